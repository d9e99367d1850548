"""Labelled data of the prompt-selection tasks (SST-2, AG News, CB, RTE) in their original formats, with the
promptsource templates written for them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import common

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


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The evaluation data folder: ``data_dir``, else ``$MI_DECODE_DATA_DIR`` (see
    :func:`mi_decode.common.resolve_data_dir`). The prompt-selection sets have no Hub copy, so a missing
    folder is an error."""
    folder = common.resolve_data_dir(data_dir)
    if folder is None:
        raise common.DataNotFoundError(
            f"no data folder given: pass `data_dir` (CLI: --data-dir DIR) or set ${common.DATA_DIR_ENV}"
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
        >>> from mi_decode.eval.data.prompt_selection import load_task
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
