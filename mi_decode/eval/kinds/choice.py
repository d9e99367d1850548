"""The ``choice`` kind: score each candidate continuation of a prompt by the method's adjusted
log-probabilities summed over its tokens (MemoTrap); the prediction is the best candidate.

Example fields: ``prompt`` (the conditioned prompt), ``rest`` (the prompt without its condition, for MI
methods), ``candidates`` (the continuations) and ``answer_index`` (the correct one).

Every method of a task reads the same two forward passes (prompt + candidate, rest + candidate), so the
methods run together: one forward per batch, whatever the number of methods.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..registry import register_kind
from .base import TaskKind

if TYPE_CHECKING:  # torch loads only when a task runs, so `mi-decode eval --help` stays light
    import torch


def continuation_logits(
    model, sequences: list[list[int]], lengths: list[int], pad_id: int
) -> list[torch.Tensor]:
    """For each token sequence, the logits (n, V) that predict its last ``n = lengths[i]`` tokens."""
    import torch

    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, sequence in enumerate(sequences):
        input_ids[row, width - len(sequence) :] = torch.tensor(sequence)
        attention_mask[row, width - len(sequence) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    device = next(model.parameters()).device
    # Left padding puts every continuation at the end: only the last max(n) + 1 positions need the LM head.
    keep = max(lengths) + 1
    kwargs = {"logits_to_keep": keep} if model._supports_logits_to_keep() else {}
    with torch.inference_mode():
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            position_ids=position_ids.to(device),
            **kwargs,
        ).logits.float()
    width = logits.shape[1]
    return [logits[row, width - n - 1 : width - 1] for row, n in enumerate(lengths)]


def candidate_scores(
    conditioned_logits: torch.Tensor, unconditioned_logits: torch.Tensor | None, tokens: torch.Tensor, config
) -> float:
    """Sum over the candidate's tokens of log softmax(l*) at each token, l* the method's adjusted scores at
    step i (1 at the candidate's first token); plain log-probabilities when ``config`` is None."""
    unconditioned = None if unconditioned_logits is None else [unconditioned_logits]
    return candidate_scores_many([conditioned_logits], unconditioned, [tokens], config)[0]


def candidate_scores_many(
    conditioned_logits: list[torch.Tensor],
    unconditioned_logits: list[torch.Tensor] | None,
    tokens: list[torch.Tensor],
    config,
) -> list[float]:
    """:func:`candidate_scores` of many candidates: one rule call per step over every candidate that is
    that long (the rules take one step number per call), instead of one per token."""
    import torch

    from ...m3id import mi_amplify

    totals = [0.0] * len(tokens)
    for i in range(max(len(t) for t in tokens)):
        rows = [k for k, t in enumerate(tokens) if len(t) > i]
        scores = torch.stack([conditioned_logits[k][i] for k in rows])
        if config is not None:
            unconditioned = torch.stack([unconditioned_logits[k][i] for k in rows])
            scores = mi_amplify(scores, unconditioned, i + 1, config).scores
        targets = torch.stack([tokens[k][i] for k in rows])[:, None].to(scores.device)
        for k, value in zip(
            rows, torch.log_softmax(scores, dim=-1).gather(1, targets)[:, 0].tolist(), strict=True
        ):
            totals[k] += value
    return totals


@register_kind("choice")
class ChoiceKind(TaskKind):
    default_metrics = ("accuracy",)
    fields = {"prompt": "text", "rest": "text", "candidates": "texts", "answer_index": "int"}

    def sweepable(self, task, method) -> bool:
        return True  # every method reads the same logits (see run_many)

    def run(self, ctx, task, method, units: list[dict]) -> list[dict[str, Any]]:
        return self.run_many(ctx, task, [method], units)[0]

    def run_many(self, ctx, task, methods, units: list[dict]) -> list[list[dict[str, Any]]]:
        tokenizer, model = ctx.tokenizer, ctx.model
        configs = [method.mi_config() for method in methods]
        branch_count = 1 if all(config is None for config in configs) else 2
        sequences, lengths, starts = [], [], []
        for example in units:
            starts.append(len(sequences))
            branches = [example["prompt"], example["rest"]][:branch_count]
            for candidate in example["candidates"]:
                candidate_ids = tokenizer(candidate, add_special_tokens=False)["input_ids"]
                for prefix in branches:
                    sequences.append(tokenizer(prefix)["input_ids"] + candidate_ids)
                    lengths.append(len(candidate_ids))
        logits = continuation_logits(model, sequences, lengths, tokenizer.pad_token_id)
        return [self._records(units, starts, branch_count, sequences, lengths, logits, c) for c in configs]

    @staticmethod
    def _records(units, starts, branch_count, sequences, lengths, logits, config) -> list[dict[str, Any]]:
        import torch

        rows = [
            start + index * branch_count
            for example, start in zip(units, starts, strict=True)
            for index in range(len(example["candidates"]))
        ]
        all_scores = candidate_scores_many(
            [logits[row] for row in rows],
            None if config is None else [logits[row + 1] for row in rows],
            [torch.tensor(sequences[row][-lengths[row] :]) for row in rows],
            config,
        )
        results, used = [], 0
        for example in units:
            scores = all_scores[used : used + len(example["candidates"])]
            used += len(scores)
            best = max(range(len(scores)), key=scores.__getitem__)
            # A tie (e.g. both candidates cut by the plausibility constraint) is no prediction.
            tied = sum(1 for score in scores if score == scores[best]) > 1
            results.append(
                {
                    "scores": [score if math.isfinite(score) else None for score in scores],
                    "prediction": None if tied else best,
                    "correct": (not tied) and best == example["answer_index"],
                }
            )
        return results
