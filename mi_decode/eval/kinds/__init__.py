"""What each kind of task does with a batch of examples, and how its records are summarised.

* ``generate``: render the conditioned (and, for MI methods, unconditioned) prompt of each example with
  Jinja, decode with the method, and score the output with the task's metric.
* ``choice``: score each candidate continuation by the method's adjusted log-probabilities summed over its
  tokens (MemoTrap); the prediction is the best candidate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from jinja2.sandbox import SandboxedEnvironment

from ...fused import generate as fused_generate
from ...m3id import MIConfig, mi_amplify
from ...models import encode_prompts
from ...typical import LocallyTypicalLogitsWarper
from .. import data as eval_data
from ..metrics import mauve as mauve_metrics
from ..metrics import text as metrics
from ..suite import MethodSpec, SuiteError, TaskSpec

_JINJA = SandboxedEnvironment(keep_trailing_newline=False)


@dataclasses.dataclass
class EvalContext:
    """What tasks need from the run: the model, its tokenizer and the data folder."""

    model: Any
    tokenizer: Any
    data_dir: Any = None
    feature_extractor: Callable[[Sequence[str]], Any] | None = None  # for MAUVE; built on first use

    def mauve_features(self, texts: Sequence[str]):
        if self.feature_extractor is None:
            try:
                self.feature_extractor = mauve_metrics.MiniLMFeatureExtractor()
            except ModuleNotFoundError:  # the MiniLM package is optional: fall back to the evaluated model
                self.feature_extractor = mauve_metrics.CausalLMFeatureExtractor(self.model, self.tokenizer)
        return self.feature_extractor(texts)


# ------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------

DATA_LOADERS: dict[str, Callable[..., list]] = {
    "nqswap": lambda data_dir, limit, **options: eval_data.load_nqswap(data_dir, limit=limit, **options),
    "memotrap": lambda data_dir, limit, **options: eval_data.load_memotrap(data_dir, limit=limit, **options),
    "cnndm": lambda data_dir, limit, **options: eval_data.load_cnndm(data_dir, limit=limit, **options),
    "wikitext": lambda data_dir, limit, **options: eval_data.load_open_ended(
        "wikitext", data_dir, limit=limit
    ),
    "book": lambda data_dir, limit, **options: eval_data.load_open_ended("book", data_dir, limit=limit),
}


def load_examples(task: TaskSpec, data_dir, limit: int | None, quick: bool = False) -> list:
    """The task's units of work, each with an ``id``: examples, or templates for prompt selection."""
    if task.kind == "prompt_selection":
        from .prompt_selection import load_units

        return load_units(task, data_dir, limit, quick)
    if task.kind == "pope":
        from .pope import load_pope

        return load_pope(task, data_dir, limit)
    if task.data not in DATA_LOADERS:
        raise SuiteError(f"task {task.name!r}: unknown data {task.data!r}; known: {sorted(DATA_LOADERS)}")
    return DATA_LOADERS[task.data](data_dir, limit, **task.data_options)


def example_fields(example) -> dict[str, Any]:
    return dataclasses.asdict(example) if dataclasses.is_dataclass(example) else dict(example)


def render(template: str, example, task: TaskSpec, which: str) -> str:
    try:
        return _JINJA.from_string(template).render(**example_fields(example))
    except Exception as error:  # a suite's template is untrusted input: report it, never run it unsandboxed
        raise SuiteError(
            f"task {task.name!r}: the {which} template failed on {example.id!r}: {error}"
        ) from None


# ------------------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------------------


def _generate_kwargs(method: MethodSpec, task: TaskSpec, tokenizer) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": task.max_new_tokens,
        "do_sample": method.sample,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if method.sample:
        # Explicit values: transformers v5 samples with top_k=50 when top_k is not given.
        kwargs["top_k"] = method.top_k or 0
        kwargs["top_p"] = 1.0 if method.top_p is None else method.top_p
        kwargs["temperature"] = 1.0 if method.temperature is None else method.temperature
    if method.typical_p is not None:
        kwargs["logits_processor"] = [LocallyTypicalLogitsWarper(tau=method.typical_p)]
    return kwargs


def decode_batch(
    ctx: EvalContext, task: TaskSpec, method: MethodSpec, examples: list
) -> list[dict[str, Any]]:
    """Generate for ``examples`` with ``method``; one dict per example with ``output`` (and the MI
    diagnostics when the task asks for them)."""
    from ...diagnostics import MIDiagnostics

    tokenizer, model = ctx.tokenizer, ctx.model
    conditioned = encode_prompts(
        tokenizer, [render(task.conditioned, e, task, "conditioned") for e in examples], task.chat
    )
    kwargs = _generate_kwargs(method, task, tokenizer)
    mi_config = method.mi_config()
    # Greedy decoding through the fused path with weight 0 picks the same tokens and records the pointwise
    # MI of each, the baseline of the MI decay plot.
    if mi_config is None and task.diagnostics and task.unconditioned:
        mi_config = MIConfig(rule="constant", weight=0.0)
    diagnostics = MIDiagnostics() if mi_config is not None and task.diagnostics else None
    with torch.inference_mode():
        if mi_config is None:
            sequences = model.generate(**conditioned, **kwargs)
        else:
            if not task.unconditioned:
                raise SuiteError(
                    f"task {task.name!r} has no unconditioned template for MI method {method.name!r}"
                )
            unconditioned = encode_prompts(
                tokenizer, [render(task.unconditioned, e, task, "unconditioned") for e in examples], task.chat
            )
            sequences = fused_generate(
                model,
                **conditioned,
                unconditional_inputs=unconditioned,
                mi_config=mi_config,
                diagnostics=diagnostics,
                **kwargs,
            )
    new_tokens = sequences[:, conditioned["input_ids"].shape[1] :]
    results = []
    for row, tokens in enumerate(new_tokens):
        length = _generated_length(tokens, tokenizer)
        result = {"output": tokenizer.decode(tokens[:length], skip_special_tokens=True).strip()}
        if diagnostics is not None:
            result["pointwise_mi"] = [round(step[row], 4) for step in diagnostics.pointwise_mi[:length]]
            result["gate"] = [bool(step[row]) for step in diagnostics.gate[:length]]
        results.append(result)
    return results


def _generated_length(tokens: torch.Tensor, tokenizer) -> int:
    """Tokens up to and including the first EOS (generate pads finished rows after it)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        return len(tokens)
    hits = (tokens == eos).nonzero()
    return int(hits[0, 0]) + 1 if len(hits) else len(tokens)


# ------------------------------------------------------------------------------------------------------
# Per-example metrics (computed as each example completes) and summaries (over all records)
# ------------------------------------------------------------------------------------------------------


def score_generation(task: TaskSpec, example, output: str) -> dict[str, Any]:
    if task.metric == "nqswap":
        return {
            "substituted": metrics.answer_contains(output, example.substituted_answers),
            "original": metrics.answer_contains(output, example.original_answers),
        }
    if task.metric == "rouge":
        return metrics.rouge_per_example([output], [example.reference])[0]
    if task.metric == "open_ended":
        return {"reference": example.reference}
    raise SuiteError(f"task {task.name!r}: unknown metric {task.metric!r} (nqswap, rouge, open_ended)")


def _mean(records: list[dict], key: str) -> float:
    return float(sum(float(record[key]) for record in records) / len(records))


def summarize(ctx: EvalContext, task: TaskSpec, records: list[dict[str, Any]]) -> dict[str, float]:
    """Metrics of one (task, method) over its records."""
    if not records:
        return {}
    if task.kind == "prompt_selection":
        raise SuiteError("prompt selection is summarised over all templates, not per method")
    if task.kind == "choice":
        return {"accuracy": _mean(records, "correct")}
    if task.kind == "pope":
        from .pope import summarize_pope

        return summarize_pope(records)
    if task.metric == "nqswap":
        return {
            "substituted_answer_rate": _mean(records, "substituted"),
            "original_answer_rate": _mean(records, "original"),
        }
    if task.metric == "rouge":
        return {name: _mean(records, name) for name in metrics.ROUGE_TYPES}
    if task.metric == "open_ended":
        return _open_ended_summary(ctx, task, records)
    raise SuiteError(f"task {task.name!r}: unknown metric {task.metric!r}")


def per_example_metrics(task: TaskSpec) -> dict[str, str]:
    """The summary metrics that are means of a per-example record field (summary key -> record key), which
    can be compared between methods example by example. Corpus-level metrics (MAUVE, Zipf, POPE's F1) are
    not among them."""
    if task.kind == "choice":
        return {"accuracy": "correct"}
    if task.kind == "generate" and task.metric == "nqswap":
        return {"substituted_answer_rate": "substituted", "original_answer_rate": "original"}
    if task.kind == "generate" and task.metric == "rouge":
        return {name: name for name in metrics.ROUGE_TYPES}
    return {}


# MAUVE quantises both text sets with k-means into about n/10 clusters; below this many texts the score
# is noise (mauve-text itself warns), so it is left blank.
MAUVE_MIN_TEXTS = 32


def _mauve(ctx: EvalContext, references: list[str], outputs: list[str]) -> float:
    if len(outputs) < MAUVE_MIN_TEXTS:
        raise ValueError(f"MAUVE needs at least {MAUVE_MIN_TEXTS} texts")
    return mauve_metrics.mauve_score(ctx.mauve_features(references), ctx.mauve_features(outputs))


def _open_ended_summary(ctx: EvalContext, task: TaskSpec, records: list[dict]) -> dict[str, float]:
    # Model tokens, as Welleck et al. (2020) count repetition; empty outputs still count as texts.
    tokenize = ctx.tokenizer.tokenize
    outputs = [record["output"] for record in records]
    # Human continuations cut to the generation budget so MAUVE compares texts of similar length.
    references = [
        ctx.tokenizer.convert_tokens_to_string(tokenize(record["reference"])[: task.max_new_tokens])
        for record in records
    ]
    statistics = {
        "seq_rep_4": lambda: metrics.seq_rep_n(outputs, 4, tokenizer=tokenize),
        "repeated_4gram_share": lambda: metrics.repeated_ngram_share(outputs, 4, tokenizer=tokenize),
        "distinct_2": lambda: metrics.distinct_n(outputs, 2, tokenizer=tokenize),
        "zipf": lambda: metrics.zipf_coefficient(outputs, tokenizer=tokenize),
        "mean_length": lambda: metrics.mean_length(outputs, tokenizer=tokenize),
        "mauve": lambda: _mauve(ctx, references, outputs),
    }
    summary = {}
    for name, compute in statistics.items():
        try:
            summary[name] = compute()
        except ValueError:  # undefined on too little text (no 4-gram, one distinct token, one text)
            summary[name] = None
    return summary


# ------------------------------------------------------------------------------------------------------
# Choice scoring (MemoTrap)
# ------------------------------------------------------------------------------------------------------


def _continuation_logits(
    model, sequences: list[list[int]], lengths: list[int], pad_id: int
) -> list[torch.Tensor]:
    """For each token sequence, the logits (n, V) that predict its last ``n = lengths[i]`` tokens."""
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, sequence in enumerate(sequences):
        input_ids[row, width - len(sequence) :] = torch.tensor(sequence)
        attention_mask[row, width - len(sequence) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            position_ids=position_ids.to(device),
        ).logits.float()
    return [logits[row, width - n - 1 : width - 1] for row, n in enumerate(lengths)]


def candidate_scores(
    conditioned_logits: torch.Tensor, unconditioned_logits: torch.Tensor, tokens: torch.Tensor, config
) -> float:
    """Sum over the candidate's tokens of log softmax(l*) at each token, l* the method's adjusted scores at
    step i (1 at the candidate's first token); plain log-probabilities when ``config`` is None."""
    if config is None:
        adjusted = conditioned_logits
    else:
        adjusted = torch.cat(
            [
                mi_amplify(
                    conditioned_logits[i : i + 1], unconditioned_logits[i : i + 1], i + 1, config
                ).scores
                for i in range(len(tokens))
            ]
        )
    return float(torch.log_softmax(adjusted, dim=-1).gather(1, tokens[:, None]).sum())


def choose_batch(
    ctx: EvalContext, task: TaskSpec, method: MethodSpec, examples: list
) -> list[dict[str, Any]]:
    tokenizer, model = ctx.tokenizer, ctx.model
    config = method.mi_config()
    sequences, lengths, spans = [], [], []
    for example in examples:
        branches = [example.prompt] if config is None else [example.prompt, example.rest]
        start = len(sequences)
        for candidate in example.candidates:
            candidate_ids = tokenizer(candidate, add_special_tokens=False)["input_ids"]
            for prefix in branches:
                sequences.append(tokenizer(prefix)["input_ids"] + candidate_ids)
                lengths.append(len(candidate_ids))
        spans.append((start, len(branches)))
    logits = _continuation_logits(model, sequences, lengths, tokenizer.pad_token_id)
    results = []
    for example, (start, branch_count) in zip(examples, spans, strict=True):
        scores = []
        for index in range(len(example.candidates)):
            row = start + index * branch_count
            tokens = torch.tensor(sequences[row][-lengths[row] :], device=logits[row].device)
            unconditioned = logits[row + 1] if branch_count == 2 else None
            scores.append(candidate_scores(logits[row], unconditioned, tokens, config))
        best = max(range(len(scores)), key=scores.__getitem__)
        # A tie (e.g. both candidates cut by the plausibility constraint) is no prediction.
        tied = sum(1 for score in scores if score == scores[best]) > 1
        results.append(
            {
                "scores": [score if math.isfinite(score) else None for score in scores],
                "prediction": None if tied else best,
                "correct": (not tied) and best == example.answer_index,
            }
        )
    return results


def run_batch(ctx: EvalContext, task: TaskSpec, method: MethodSpec, examples: list) -> list[dict[str, Any]]:
    """Records (without id/index) for a batch of examples."""
    if task.kind == "choice":
        return choose_batch(ctx, task, method, examples)
    if task.kind == "prompt_selection":
        from .prompt_selection import score_units

        return score_units(ctx, examples)
    if task.kind == "pope":
        from .pope import answer_batch

        return answer_batch(ctx, task, method, examples)
    if task.kind == "generate":
        outputs = decode_batch(ctx, task, method, examples)
        return [
            {**result, **score_generation(task, example, result["output"])}
            for example, result in zip(examples, outputs, strict=True)
        ]
    raise SuiteError(f"task {task.name!r}: kind {task.kind!r} is not run per example")
