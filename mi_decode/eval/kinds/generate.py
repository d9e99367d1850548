"""The ``generate`` kind: render each example's conditioned prompt (and, for MI methods, its unconditioned
prompt) with Jinja, decode with the method through :func:`mi_decode.generate`, and score the output with
the task's metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..registry import SuiteError, register_kind
from .base import TaskKind, check_template, render

if TYPE_CHECKING:  # torch loads only when a task runs, so `mi-decode eval --help` stays light
    import torch


def generate_kwargs(method, max_new_tokens: int, pad_token_id: int | None) -> dict[str, Any]:
    """``generate`` keywords of a suite method: greedy, or sampling with its warpers set explicitly."""
    from ...typical import LocallyTypicalLogitsWarper

    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": method.sample,
        "pad_token_id": pad_token_id,
    }
    if method.sample:
        # Explicit values, so a model's own generation config cannot change a suite's method.
        kwargs["top_p"] = 1.0 if method.top_p is None else method.top_p
        kwargs["temperature"] = 1.0 if method.temperature is None else method.temperature
        if method.top_k is not None:
            kwargs["top_k"] = method.top_k  # else mi_decode.generate samples without top-k
    if method.typical_p is not None:
        kwargs["logits_processor"] = [LocallyTypicalLogitsWarper(tau=method.typical_p)]
    return kwargs


def generated_length(tokens: torch.Tensor, eos_token_id: int | None) -> int:
    """Tokens up to and including the first EOS (generate pads finished rows after it)."""
    if eos_token_id is None:
        return len(tokens)
    hits = (tokens == eos_token_id).nonzero()
    return int(hits[0, 0]) + 1 if len(hits) else len(tokens)


def mean_curve(records: list[dict], key: str = "pointwise_mi") -> list[float]:
    """Mean of a per-step record field (the chosen token's pointwise MI, the rule's weight) at each step,
    over the records that reached that step."""
    curves = [record[key] for record in records if record.get(key)]
    length = max((len(curve) for curve in curves), default=0)
    means = []
    for step in range(length):
        values = [curve[step] for curve in curves if len(curve) > step]
        means.append(round(sum(values) / len(values), 4))
    return means


@register_kind("generate")
class GenerateKind(TaskKind):
    def check(self, task, methods, where: str) -> None:
        if not task.metrics:
            raise SuiteError(f"{where}: a generate task needs 'metrics' (e.g. [rouge])")
        check_template(task.conditioned, where, "conditioned")
        if task.unconditioned is not None:
            check_template(task.unconditioned, where, "unconditioned")
        mi_methods = [method.name for method in methods if method.mi]
        if mi_methods and task.unconditioned is None:
            raise SuiteError(
                f"{where}: MI method {mi_methods[0]!r} needs an 'unconditioned' prompt (the prompt without its condition)"
            )
        if task.diagnostics and task.unconditioned is None:
            raise SuiteError(f"{where}: 'diagnostics' need an 'unconditioned' prompt")

    fields_note = "the fields its conditioned and unconditioned prompts read (any type)"

    def required_fields(self, task) -> dict[str, str]:
        fields = dict.fromkeys(check_template(task.conditioned, task.name, "conditioned"), "any")
        if task.unconditioned is not None:
            fields.update(
                dict.fromkeys(check_template(task.unconditioned, task.name, "unconditioned"), "any")
            )
        fields.update(super().required_fields(task))
        return fields

    def length(self, ctx, task, unit) -> int:
        # Tokens, not characters: NQ-Swap's passages (tables, markup) vary 3x in tokens per character, and
        # grouping by characters padded its batches of 8 to 1.42x the real tokens (tokens: 1.11x).
        tokenizer = getattr(ctx.tokenizer, "tokenizer", ctx.tokenizer)  # a processor holds its tokenizer
        text = render(task.conditioned, unit, task, "conditioned")
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def sweepable(self, task, method) -> bool:
        # Greedy methods on the fused path share one prefill per batch (see run_many).
        return not method.sample and method.typical_p is None and (bool(method.mi) or task.diagnostics)

    def run(self, ctx, task, method, units: list[dict]) -> list[dict]:
        return self.run_many(ctx, task, [method], units)[0]

    def run_many(self, ctx, task, methods, units: list[dict]) -> list[list[dict]]:
        outputs_by_method = self.decode_many(ctx, task, methods, units)
        records = []
        for outputs in outputs_by_method:
            scores = self.score(ctx, task, units, [output["output"] for output in outputs])
            records.append([{**output, **score} for output, score in zip(outputs, scores, strict=True)])
        return records

    def decode(self, ctx, task, method, units: list[dict]) -> list[dict[str, Any]]:
        """One dict per example with ``output`` (and the MI diagnostics when the task asks for them)."""
        return self.decode_many(ctx, task, [method], units)[0]

    def decode_many(self, ctx, task, methods, units: list[dict]) -> list[list[dict[str, Any]]]:
        """:meth:`decode` for several methods; more than one must all be :meth:`sweepable`, and then share
        one prefill (``mi_decode.generate(mi_config=[...])``)."""
        import torch

        from ...diagnostics import MIDiagnostics
        from ...fused import generate
        from ...m3id import MIConfig
        from ...models import encode_prompts

        if len(methods) > 1 and not all(self.sweepable(task, method) for method in methods):
            raise ValueError("only greedy methods on the fused path decode together")
        tokenizer, model = ctx.tokenizer, ctx.model
        conditioned = encode_prompts(
            tokenizer, [render(task.conditioned, e, task, "conditioned") for e in units], task.chat
        )
        # Greedy through the fused path with weight 0 picks the same tokens and records the pointwise MI of
        # each, the baseline of the MI decay plot.
        configs = [
            method.mi_config() or (MIConfig(rule="constant", weight=0.0) if task.diagnostics else None)
            for method in methods
        ]
        unconditioned = None
        if configs[0] is not None:
            unconditioned = encode_prompts(
                tokenizer, [render(task.unconditioned, e, task, "unconditioned") for e in units], task.chat
            )
        diagnostics = [MIDiagnostics() if c is not None and task.diagnostics else None for c in configs]
        with torch.inference_mode():
            sequences = generate(
                model,
                **conditioned,
                unconditional_inputs=unconditioned,
                mi_config=configs if len(methods) > 1 else configs[0],
                diagnostics=diagnostics if len(methods) > 1 else diagnostics[0],
                **generate_kwargs(methods[0], task.max_new_tokens, tokenizer.pad_token_id),
            )
        if len(methods) == 1:
            sequences = [sequences]
        prompt_length = conditioned["input_ids"].shape[1]
        return [
            self._results(tokenizer, tokens[:, prompt_length:], record)
            for tokens, record in zip(sequences, diagnostics, strict=True)
        ]

    @staticmethod
    def _results(tokenizer, new_tokens: torch.Tensor, diagnostics) -> list[dict[str, Any]]:
        results = []
        for row, tokens in enumerate(new_tokens):
            length = generated_length(tokens, tokenizer.eos_token_id)
            result: dict[str, Any] = {
                "output": tokenizer.decode(tokens[:length], skip_special_tokens=True).strip()
            }
            if diagnostics is not None:
                result["pointwise_mi"] = [round(step[row], 4) for step in diagnostics.pointwise_mi[:length]]
                result["gate"] = [bool(step[row]) for step in diagnostics.gate[:length]]
                result["weight"] = [round(step[row], 4) for step in diagnostics.weight[:length]]
            results.append(result)
        return results

    def summarize_task(self, ctx, task, records_by_method, units, seed) -> dict[str, Any]:
        results = super().summarize_task(ctx, task, records_by_method, units, seed)
        if task.diagnostics:
            curves = {name: mean_curve(records) for name, records in records_by_method.items()}
            # results.json keeps its historical key order: examples, methods, pointwise_mi, paired.
            paired = results.pop("paired", None)
            results["pointwise_mi"] = curves
            weights = {name: mean_curve(records, "weight") for name, records in records_by_method.items()}
            if any(weights.values()):  # records written before the weight was recorded have none
                results["mi_weight"] = weights
            if paired:
                results["paired"] = paired
        return results
