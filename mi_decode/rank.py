"""Rank prompt templates without labels: score every template on the inputs, then select by mutual
information (or another method of the unified family) with CBM calibration.

Also loaders for the prompt-selection task data (SST-2, AG News, CB, RTE) and the ``rank-prompts``
command line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import eval_data
from .scoring import ANSWER_SCORES, TemplateScores, score_templates
from .selection import (
    CALIBRATIONS,
    METHODS,
    NORMALIZATIONS,
    SETTINGS,
    normalize_calibration,
    normalize_method,
    normalize_setting,
    select_prompts,
)
from .templates import PromptTemplate, load_inputs, load_templates

# task -> (data file under prompt_selection/data, templates folder under prompt_selection/templates)
TASKS = {
    "sst2": ("sst2/stsa.binary.dev", "glue/sst2"),
    "agnews": ("agnews/test.csv", "ag_news"),
    "cb": ("cb/val.jsonl", "super_glue/cb"),
    "rte": ("rte/val.jsonl", "glue/rte"),
}
# Label names in the order of the Hugging Face datasets the promptsource templates were written for.
_CB_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}
_RTE_LABELS = {"entailment": 0, "not_entailment": 1}


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


def _macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
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
) -> PromptRanking:
    """Rank prompt templates by a label-free criterion (mutual information with CBM by default).

    Sorensen et al. (ACL 2022) select the template maximising the mutual information between inputs and
    answers; Yang et al. (TACL 2024) add Calibration by Marginalization (CBM), applied to the prompt scores
    and the answers in the default setting ``"PA"``. See :mod:`mi_decode.selection` for the formulas.

    Args:
        model, tokenizer: a causal LM and its tokenizer.
        templates: :class:`~mi_decode.templates.PromptTemplate` objects, or a promptsource YAML path.
        inputs: examples: a list of dicts, a ``datasets.Dataset`` or a JSONL/JSON/CSV file.
        method: one of :data:`mi_decode.selection.METHODS` (``"mi"`` by default).
        calibration: ``"cbm"`` (default), ``"cc"``, ``"pmi_dc"`` or ``"none"``.
        setting: ``"X"``, ``"A"``, ``"P"`` or ``"PA"`` (default): where the calibration applies.
        answer_score: answer log-prob mode: ``"mean"`` over its tokens (default), ``"sum"`` or ``"first"``.
        batch_size: prompts per forward pass.
        progress: show a progress bar.
        labels: optional gold answer indices (or the name of an input field holding them); only used to
            report each template's macro-F1 and the selected/oracle ratio, never to select.
        norm: renormalisation of calibrated probabilities, ``"softmax"`` (default) or ``"sum"``.

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
    """
    method = normalize_method(method)
    calibration = normalize_calibration(calibration)
    setting = normalize_setting(setting)
    if answer_score not in ANSWER_SCORES:
        raise ValueError(f"`answer_score` must be one of {ANSWER_SCORES}, got {answer_score!r}")
    if norm not in NORMALIZATIONS:
        raise ValueError(f"`norm` must be one of {NORMALIZATIONS}, got {norm!r}")
    if isinstance(templates, (str, os.PathLike)):
        templates = load_templates(templates)
    examples = load_inputs(inputs)
    gold = _resolve_labels(labels, examples)

    scores = score_templates(
        model,
        tokenizer,
        templates,
        examples,
        batch_size=batch_size,
        progress=progress,
        perplexity=method in ("ppl", "ppl_l"),
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
        ranking.macro_f1 = {name: _macro_f1(gold, selection.predictions[t]) for t, name in enumerate(names)}
        ranking.selected_f1 = _macro_f1(gold, selection.selected_predictions)
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


# Task data ---------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The evaluation data folder: ``data_dir``, else ``$MI_DECODE_DATA_DIR`` (see
    :func:`mi_decode.eval_data.resolve_data_dir`). The prompt-selection sets have no Hub copy, so a missing
    folder is an error."""
    folder = eval_data.resolve_data_dir(data_dir)
    if folder is None:
        raise eval_data.DataNotFoundError(
            f"no data folder given: pass `data_dir` (CLI: --data-dir DIR) or set ${eval_data.DATA_DIR_ENV}"
        )
    return folder


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    return task


def task_templates_path(task: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The promptsource ``templates.yaml`` for a task (``"sst2"``, ``"agnews"``, ``"cb"`` or ``"rte"``)."""
    return (
        resolve_data_dir(data_dir)
        / "prompt_selection"
        / "templates"
        / TASKS[_check_task(task)][1]
        / "templates.yaml"
    )


def load_task(task: str, data_dir: str | os.PathLike | None = None, limit: int | None = None) -> list[dict]:
    """The labelled evaluation set of a prompt-selection task, with the field names its promptsource
    templates expect and integer labels in the templates' ``answer_choices`` order.

    ============  ==========================  ==========================================================
    task          file                        fields
    ============  ==========================  ==========================================================
    ``sst2``      ``sst2/stsa.binary.dev``    ``sentence``; label 0 negative, 1 positive
    ``agnews``    ``agnews/test.csv``         ``text`` (title and description); label 0 World ... 3 Sci/Tech
    ``cb``        ``cb/val.jsonl``            ``premise``, ``hypothesis``; 0 entailment, 1 contradiction,
                                              2 neutral
    ``rte``       ``rte/val.jsonl``           ``sentence1``, ``sentence2``; 0 entailment, 1 not_entailment
    ============  ==========================  ==========================================================

    Example:
        >>> from mi_decode.rank import load_task
        >>> examples = load_task("sst2", "../shared/data", limit=2)  # doctest: +SKIP
        >>> sorted(examples[0])  # doctest: +SKIP
        ['label', 'sentence']
    """
    path = resolve_data_dir(data_dir) / "prompt_selection" / "data" / TASKS[_check_task(task)][0]
    return read_task_file(task, path, limit)


def infer_task(path: str | os.PathLike) -> str | None:
    """The task whose data format a file has, from its name (``stsa.binary.*`` is SST-2) or its folder."""
    path = Path(path)
    if path.name.startswith("stsa.binary"):
        return "sst2"
    return path.parent.name if path.parent.name in TASKS else None


def read_task_file(task: str, path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """Read one task data file in its original format (see :func:`load_task`).

    Raises:
        ValueError: naming the file and line of a malformed, truncated or unlabelled record.
    """
    task, path = _check_task(task), Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None, got {limit!r}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if task == "sst2":
        reader = _read_sst2
    elif task == "agnews":
        reader = _read_agnews
    else:
        reader = _read_nli_jsonl
    examples = []
    for example in reader(path, task):
        examples.append(example)
        if limit and len(examples) == limit:
            break
    if not examples:
        raise ValueError(f"{path}: no examples")
    return examples


def _read_sst2(path: Path, task: str):
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            label, _, sentence = line.rstrip("\n").partition(" ")
            if label not in ("0", "1") or not sentence.strip():
                raise ValueError(
                    f"{path}:{line_number}: expected '<0|1> <sentence>', got {line.strip()[:80]!r}"
                )
            yield {"sentence": sentence.strip(), "label": int(label)}


def _read_agnews(path: Path, task: str):
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            if reader.line_num == 1 and row and not row[0].strip().isdigit():
                continue  # header
            if len(row) != 3 or row[0].strip() not in ("1", "2", "3", "4"):
                raise ValueError(
                    f"{path}:{reader.line_num}: expected 'class (1-4),title,description', got {row!r}"
                )
            yield {"text": f"{row[1].strip()} {row[2].strip()}", "label": int(row[0]) - 1}


def _read_nli_jsonl(path: Path, task: str):
    names = _CB_LABELS if task == "cb" else _RTE_LABELS
    fields = ("premise", "hypothesis") if task == "cb" else ("sentence1", "sentence2")
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_number}: invalid JSON ({err.msg})") from err
            if not isinstance(record, dict) or not {"premise", "hypothesis", "label"} <= set(record):
                raise ValueError(
                    f"{path}:{line_number}: expected an object with premise, hypothesis and label"
                )
            if record["label"] not in names:
                raise ValueError(
                    f"{path}:{line_number}: unknown label {record['label']!r}; expected one of {list(names)}"
                )
            yield {
                fields[0]: record["premise"],
                fields[1]: record["hypothesis"],
                "label": names[record["label"]],
            }


# Command line ------------------------------------------------------------------------------------------


def add_subcommand(subparsers) -> None:
    """Register ``rank-prompts`` on an ``argparse`` subparsers object.

    Example:
        >>> import argparse
        >>> from mi_decode.rank import add_subcommand
        >>> parser = argparse.ArgumentParser(prog="mi-decode")
        >>> add_subcommand(parser.add_subparsers())
        >>> args = parser.parse_args(["rank-prompts", "--templates", "t.yaml", "--data", "d.jsonl"])
        >>> args.method, args.calibration, args.setting
        ('mi', 'cbm', 'PA')
    """
    from .cli import positive_int

    parser = subparsers.add_parser(
        "rank-prompts",
        help="rank prompt templates by mutual information (no labels needed)",
        description="Score every template on the inputs and rank them by a label-free criterion "
        "(MI with CBM calibration by default). With labelled task data, also prints each template's macro-F1.",
    )
    parser.add_argument("--templates", required=True, help="promptsource templates.yaml")
    parser.add_argument(
        "--template-names", default=None, help="regular expression the template names must match"
    )
    parser.add_argument(
        "--data",
        required=True,
        help="inputs: JSONL/JSON/CSV/TSV, or a task data file (SST-2, AG News, CB, RTE)",
    )
    parser.add_argument(
        "--task",
        choices=sorted(TASKS),
        default=None,
        help="read --data in this task's format (default: from its name)",
    )
    parser.add_argument(
        "--label-field", default=None, help="input field with gold answer indices (for F1 only)"
    )
    parser.add_argument("--method", default="mi", type=str.lower, choices=METHODS + ("mi_a",))
    parser.add_argument("--calibration", default="cbm", type=str.lower, choices=CALIBRATIONS + ("pmi",))
    parser.add_argument("--setting", default="PA", type=str.upper, choices=SETTINGS)
    parser.add_argument("--answer-score", default="mean", choices=ANSWER_SCORES)
    parser.add_argument("--norm", default="softmax", choices=NORMALIZATIONS)
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N inputs")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument(
        "--model", default=None, help="model id or path (default: the embedded SmolLM2-135M-Instruct)"
    )
    parser.add_argument("--top", type=positive_int, default=None, help="print only the best N templates")
    parser.add_argument("--out", default=None, help="write the result as JSON to this file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run_rank_prompts)


def run_rank_prompts(args) -> int:
    """The ``rank-prompts`` command: returns the exit status."""
    from .models import load_model

    templates = load_templates(args.templates, names=args.template_names)
    task = args.task or infer_task(args.data)
    if task is not None:
        examples = read_task_file(task, args.data, limit=args.limit)
    else:
        examples = load_inputs(args.data, limit=args.limit)
    label_field = args.label_field or ("label" if task is not None else None)
    model, tokenizer = load_model(args.model)
    result = rank_prompts(
        model,
        tokenizer,
        templates,
        examples,
        method=args.method,
        calibration=args.calibration,
        setting=args.setting,
        answer_score=args.answer_score,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        labels=label_field,
        norm=args.norm,
    )
    print(result.table(top=args.top))
    if args.out:
        summary = result.to_dict()
        summary.update(
            templates=str(args.templates), data=str(args.data), task=task, model=args.model or "embedded"
        )
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


__all__ = [
    "TASKS",
    "PromptRanking",
    "add_subcommand",
    "infer_task",
    "load_task",
    "rank_prompts",
    "read_task_file",
    "resolve_data_dir",
    "run_rank_prompts",
    "task_templates_path",
]
