"""Rank prompt templates without labels: score every template on the inputs, then select by mutual
information (or another method of the unified family) with CBM calibration.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .backends import Backend, make_backend
from .scoring import ANSWER_SCORES, TemplateScores
from .selection import (
    NORMALIZATIONS,
    normalize_calibration,
    normalize_method,
    normalize_setting,
    select_prompts,
)
from .templates import PromptTemplate, load_inputs, load_templates


@dataclass
class PromptRanking:
    """What :func:`rank_prompts` found.

    Attributes:
        method, calibration, setting, answer_score, norm: the arguments, normalised.
        template_names: the templates, in the order given.
        scores: ``[T]`` the method's score per template (higher is better; for instance-wise methods the
            fraction of inputs that chose the template).
        ranking: template names, best first.
        selected: the selected template's name (``ranking[0]``).
        predictions: ``[X]`` predicted answer index per input, from the selected template (or, for
            instance-wise methods, each input's template), under the setting's answer calibration.
        predicted_answers: the same as answer texts.
        instance_templates: ``[X]`` name of the template each prediction comes from.
        template_predictions: ``[T, X]`` every template's predictions under the same answer calibration.
        template_scores: the raw scores (log-probs of all modes, content-free log-probs, perplexities).
        macro_f1: with labels, each template's macro-F1 (name -> F1); else ``None``.
        selected_f1, oracle_f1, oracle_template, selected_oracle_ratio: with labels, the F1 of
            ``predictions``, the best template's F1 and name, and their ratio; else ``None``.
    """

    method: str
    calibration: str
    setting: str
    answer_score: str
    norm: str
    template_names: list[str]
    scores: np.ndarray
    ranking: list[str]
    selected: str
    predictions: np.ndarray
    predicted_answers: list[str]
    instance_templates: list[str]
    template_predictions: np.ndarray
    template_scores: TemplateScores = field(repr=False)
    macro_f1: dict[str, float] | None = None
    selected_f1: float | None = None
    oracle_f1: float | None = None
    oracle_template: str | None = None
    selected_oracle_ratio: float | None = None

    def table(self, top: int | None = None) -> str:
        """The ranking as a text table (the first ``top`` rows, or all)."""
        index = {name: t for t, name in enumerate(self.template_names)}
        header = f"{'rank':>4}  {'template':<24} {self.method.upper():>10}"
        header += f"  {'macro-F1':>8}" if self.macro_f1 is not None else ""
        lines = [header, "-" * len(header)]
        for rank, name in enumerate(self.ranking[:top] if top else self.ranking, 1):
            line = f"{rank:>4}  {name:<24} {self.scores[index[name]]:>10.4f}"
            line += f"  {self.macro_f1[name]:>8.4f}" if self.macro_f1 is not None else ""
            lines.append(line)
        lines.append(
            f"selected: {self.selected} (method={self.method}, calibration={self.calibration}, "
            f"setting={self.setting}, answer_score={self.answer_score})"
        )
        if self.selected_f1 is not None:
            lines.append(
                f"macro-F1 of the selection {self.selected_f1:.4f}; oracle {self.oracle_template} "
                f"{self.oracle_f1:.4f}; selected/oracle {self.selected_oracle_ratio:.4f}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-serialisable summary (without the raw per-example log-probs)."""
        index = {name: t for t, name in enumerate(self.template_names)}
        return {
            "method": self.method,
            "calibration": self.calibration,
            "setting": self.setting,
            "answer_score": self.answer_score,
            "norm": self.norm,
            "selected": self.selected,
            "ranking": [
                {"template": name, "score": float(self.scores[index[name]])} for name in self.ranking
            ],
            "predictions": self.predictions.tolist(),
            "predicted_answers": self.predicted_answers,
            "instance_templates": self.instance_templates,
            "macro_f1": self.macro_f1,
            "selected_f1": self.selected_f1,
            "oracle_f1": self.oracle_f1,
            "oracle_template": self.oracle_template,
            "selected_oracle_ratio": self.selected_oracle_ratio,
        }


def macro_f1(labels: Sequence, predictions: Sequence) -> float:
    """Macro-averaged F1 over the classes present in ``labels`` or ``predictions``
    (``sklearn.metrics.f1_score`` with ``average="macro"``), the score of the prompt-selection papers
    (Sorensen et al. 2022; Yang et al. 2024). Needs scikit-learn (the ``[eval]`` extra).

    Example:
        >>> from mi_decode.rank import macro_f1
        >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), 4)  # F1 2/3 for class 0, 4/5 for class 1
        0.7333
    """
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="macro"))


def rank_prompts(
    model,
    tokenizer,
    templates: Sequence[PromptTemplate] | str | os.PathLike,
    inputs,
    method: str = "mi",
    calibration: str | None = "cbm",
    setting: str = "PA",
    answer_score: str = "mean",
    batch_size: int = 16,
    progress: bool = True,
    labels: Sequence[int] | str | None = None,
    norm: str = "softmax",
    backend: str | Backend = "hf",
    llm=None,
) -> PromptRanking:
    """Rank prompt templates by a label-free criterion (mutual information with CBM by default).

    Sorensen et al. (ACL 2022) select the template maximising the mutual information between inputs and
    answers; Yang et al. (TACL 2024) add Calibration by Marginalization (CBM), applied to the prompt scores
    and the answers in the default setting ``"PA"``. See :mod:`mi_decode.selection` for the formulas.

    Args:
        model, tokenizer: with ``backend="hf"``, a causal LM and its tokenizer. With ``backend="vllm"``,
            ``model`` is the engine: a ``vllm.LLM``, or a model id or folder (``None``: the embedded model)
            to start one with :func:`mi_decode.vllm.scoring.load_llm` (it starts in seconds to minutes; pass
            an ``LLM`` to rank several times); ``tokenizer`` may be ``None`` (the engine's own).
        templates: :class:`~mi_decode.templates.PromptTemplate` objects, or a promptsource YAML path.
        inputs: examples: a list of dicts, a ``datasets.Dataset`` or a JSONL/JSON/CSV file.
        method: one of :data:`mi_decode.selection.METHODS` (``"mi"`` by default).
        calibration: ``"cbm"`` (default), ``"cc"``, ``"pmi_dc"`` or ``"none"``.
        setting: ``"X"``, ``"A"``, ``"P"`` or ``"PA"`` (default): where the calibration applies.
        answer_score: answer log-prob mode: ``"mean"`` over its tokens (default), ``"sum"`` or ``"first"``.
        batch_size: prompts per forward pass (``backend="hf"``; vLLM schedules its own batches).
        progress: show a progress bar.
        labels: optional gold answer indices (or the name of an input field holding them); only used to
            report each template's macro-F1 and the selected/oracle ratio, never to select.
        norm: renormalisation of calibrated probabilities, ``"softmax"`` (default) or ``"sum"``.
        backend: ``"hf"`` (default): the packed transformers scorer, :func:`mi_decode.scoring.score_templates`;
            ``"vllm"``: the same scores from a vLLM engine, :func:`mi_decode.vllm.scoring.score_templates_vllm`
            (needs vLLM 0.32, the ``[vllm]`` extra; selections agree with ``"hf"``). Or a
            :class:`~mi_decode.backends.Backend` (then ``model``, ``tokenizer`` and ``llm`` are ``None``).
        llm: with ``backend="vllm"``, the engine may be given here instead of as ``model`` (then ``model``
            must be ``None``).

    Returns:
        A :class:`PromptRanking`.

    Example:
        >>> from mi_decode import load_model
        >>> from mi_decode.rank import rank_prompts
        >>> from mi_decode.templates import PromptTemplate
        >>> model, tokenizer = load_model()  # doctest: +SKIP
        >>> templates = [
        ...     PromptTemplate.from_format("review", 'Review: "{text}" Sentiment:', ["negative", "positive"]),
        ...     PromptTemplate.from_format("plain", "{text} It was", ["bad", "good"]),
        ... ]
        >>> inputs = [{"text": "A joy from start to finish."}, {"text": "Tedious and overlong."}]
        >>> result = rank_prompts(model, tokenizer, templates, inputs)  # doctest: +SKIP
        >>> result.selected, result.predicted_answers  # doctest: +SKIP

        On vLLM (``pip install "mi-decode[vllm]"``), with an engine started once:

        >>> from mi_decode.vllm.scoring import load_llm
        >>> llm = load_llm()  # the embedded model, float32  # doctest: +SKIP
        >>> result = rank_prompts(llm, None, templates, inputs, backend="vllm")  # doctest: +SKIP
    """
    method = normalize_method(method)
    calibration = normalize_calibration(calibration)
    setting = normalize_setting(setting)
    if answer_score not in ANSWER_SCORES:
        raise ValueError(f"`answer_score` must be one of {ANSWER_SCORES}, got {answer_score!r}")
    if norm not in NORMALIZATIONS:
        raise ValueError(f"`norm` must be one of {NORMALIZATIONS}, got {norm!r}")
    backend = make_backend(backend, model=model, tokenizer=tokenizer, llm=llm)
    if isinstance(templates, (str, os.PathLike)):
        templates = load_templates(templates)
    examples = load_inputs(inputs)
    gold = _resolve_labels(labels, examples)

    perplexity = method in ("ppl", "ppl_l")
    scores = backend.score_templates(
        templates, examples, batch_size=batch_size, progress=progress, perplexity=perplexity
    )
    selection = select_prompts(
        scores.inputs.get(answer_score),
        method=method,
        calibration=calibration,
        setting=setting,
        norm=norm,
        content_free_log_probs=scores.content_free.get(answer_score),
        perplexity=scores.inputs.perplexity,
    )
    names = scores.template_names
    num_inputs = len(examples)
    answers = []
    for x in range(num_inputs):
        template = templates[selection.instance_templates[x]]
        answers.append(template.answer_choices_for(examples[x])[selection.selected_predictions[x]])
    ranking = PromptRanking(
        method=method,
        calibration=calibration,
        setting=setting,
        answer_score=answer_score,
        norm=norm,
        template_names=names,
        scores=selection.template_scores,
        ranking=[names[t] for t in selection.ranking],
        selected=names[selection.selected],
        predictions=selection.selected_predictions,
        predicted_answers=answers,
        instance_templates=[names[t] for t in selection.instance_templates],
        template_predictions=selection.predictions,
        template_scores=scores,
    )
    if gold is not None:
        num_choices = scores.inputs.mean.shape[-1]
        if gold.min() < 0 or gold.max() >= num_choices:
            raise ValueError(
                f"labels must be answer indices in [0, {num_choices}), got {sorted(set(gold.tolist()))}"
            )
        ranking.macro_f1 = {name: macro_f1(gold, selection.predictions[t]) for t, name in enumerate(names)}
        ranking.selected_f1 = macro_f1(gold, selection.selected_predictions)
        ranking.oracle_template = max(names, key=ranking.macro_f1.__getitem__)
        ranking.oracle_f1 = ranking.macro_f1[ranking.oracle_template]
        ranking.selected_oracle_ratio = (
            ranking.selected_f1 / ranking.oracle_f1 if ranking.oracle_f1 else float("nan")
        )
    return ranking


def _resolve_labels(labels, examples: list[dict]) -> np.ndarray | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        missing = [i for i, example in enumerate(examples) if labels not in example]
        if missing:
            raise ValueError(f"label field {labels!r} is missing from input {missing[0]}")
        labels = [example[labels] for example in examples]
    try:
        gold = np.asarray([int(label) for label in labels])
    except (TypeError, ValueError) as err:
        raise ValueError(f"labels must be integer answer indices: {err}") from err
    if len(gold) != len(examples):
        raise ValueError(f"got {len(gold)} labels for {len(examples)} inputs")
    return gold


__all__ = ["PromptRanking", "macro_f1", "rank_prompts"]
