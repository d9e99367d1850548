"""Labelled data of the prompt-selection tasks (SST-2, AG News, CB, RTE) in their original formats, with the
promptsource templates written for them.

Files under ``prompt_selection/`` of the data folder (from tonyzhaozh/few-shot-learning and
soheeyang/unified-prompt-selection, see the data README):

- ``data/sst2/stsa.binary.dev``: text lines ``<0|1> <sentence>`` (872), read with datasets' ``text`` builder;
- ``data/agnews/test.csv``: CSV ``class (1-4), title, description`` with an optional header (7,600);
- ``data/cb/val.jsonl``, ``data/rte/val.jsonl``: JSON lines ``premise, hypothesis, label (name), idx`` (56,
  277; the test files are unlabelled, so ``val`` is the test set); CB's ``train.jsonl`` (250) too, with
  ``split``;
- ``templates/<task>/templates.yaml``: promptsource templates.

Registered data sets ``sst2``, ``agnews``, ``cb``, ``rte``: the examples of :func:`load_task` with an ``id``
``"<task>-<row>"`` (0-based data row of the file) in front; ``cb`` takes ``split`` (``data_options``), its
train rows having ids ``"cb-train-<row>"``. These sets have no Hub copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..registry import register_data
from . import common
from .bundled import TEMPLATES, bundled_templates
from .common import DataFileError, _RowProblem, check_limit
from .reading import FileFormat, convert_rows, csv_format, json_lines_format, read_rows, text_format

# task -> (data file under prompt_selection/data, templates folder under prompt_selection/templates)
TASKS = {
    "sst2": ("sst2/stsa.binary.dev", "glue/sst2"),
    "agnews": ("agnews/test.csv", "ag_news"),
    "cb": ("cb/val.jsonl", "super_glue/cb"),
    "rte": ("rte/val.jsonl", "glue/rte"),
}
# CB's labelled files by `split`; "both" is the val rows, then the train rows.
CB_SPLITS = {
    "val": ("cb/val.jsonl",),
    "train": ("cb/train.jsonl",),
    "both": ("cb/val.jsonl", "cb/train.jsonl"),
}
# Label names in the order of the Hugging Face datasets the promptsource templates were written for.
_CB_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}
_RTE_LABELS = {"entailment": 0, "not_entailment": 1}
_AGNEWS_SHAPE = "expected 'class (1-4),title,description'"


class TaskFileError(DataFileError):
    """A bad task data file, reported compiler-style as ``path:line: problem`` (the format of
    ``mi-decode rank-prompts`` errors)."""

    def _format(self) -> str:
        return (
            f"{self.path}: {self.problem}"
            if self.line is None
            else f"{self.path}:{self.line}: {self.problem}"
        )


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The evaluation data folder (see :func:`mi_decode.eval.data.resolve_data_dir`). The prompt-selection
    sets have no Hub copy, so a missing folder is an error."""
    folder = common.resolve_data_dir(data_dir)
    if folder is None:
        raise common.DataNotFoundError(
            "no data folder given for the prompt-selection sets (they have no Hub copy). "
            + common.how_to_pass("prompt_selection/data")
        )
    return folder


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    return task


def task_templates_path(task: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The promptsource ``templates.yaml`` for a task (``"sst2"``, ``"agnews"``, ``"cb"`` or ``"rte"``): the
    data folder's, else the copy bundled in the package.

    Example:
        >>> from mi_decode.eval.data.prompt_selection import task_templates_path
        >>> task_templates_path("sst2").parts[-3:]
        ('glue', 'sst2', 'templates.yaml')
    """
    relative = f"{TASKS[_check_task(task)][1]}/templates.yaml"
    folder = common.resolve_data_dir(data_dir)
    if folder is not None and (folder / TEMPLATES / relative).is_file():
        return folder / TEMPLATES / relative
    bundled = bundled_templates(relative)
    if bundled is None:
        raise common.DataNotFoundError(
            f"no templates for {task}: the package's bundled copy is missing. {common.how_to_pass(TEMPLATES)}"
        )
    return bundled


def load_task(
    task: str, data_dir: str | os.PathLike | None = None, limit: int | None = None, split: str | None = None
) -> list[dict]:
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

    ``split`` (CB only; ``None`` is the file above): ``"val"`` (the 56 rows above), ``"train"`` (the 250 of
    ``cb/train.jsonl``) or ``"both"`` (val, then train: 306).

    Example:
        >>> from mi_decode.eval.data.prompt_selection import load_task
        >>> examples = load_task("sst2", "evals/data", limit=2)  # doctest: +SKIP
        >>> sorted(examples[0])  # doctest: +SKIP
        ['label', 'sentence']
    """
    return [example for _, example in _labelled_rows(task, data_dir, limit, split)]


def _labelled_rows(task: str, data_dir, limit: int | None, split: str | None) -> list[tuple[str, dict]]:
    """``(id, example)`` pairs of :func:`load_task`: ids ``"<task>-<row>"``, CB's train rows ``"cb-train-<row>"``."""
    files = [TASKS[_check_task(task)][0]]
    if split is not None:
        if task != "cb":
            raise ValueError(f"`split` applies to cb only, got split={split!r} for {task!r}")
        if split not in CB_SPLITS:
            raise ValueError(f"CB split must be one of {', '.join(CB_SPLITS)}, got {split!r}")
        files = list(CB_SPLITS[split])
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None, got {limit!r}")
    folder = resolve_data_dir(data_dir) / "prompt_selection" / "data"
    rows = []
    for file in files:
        prefix = f"{task}-train-" if file == "cb/train.jsonl" else f"{task}-"
        rows += [
            (f"{prefix}{row}", example) for row, example in enumerate(read_task_file(task, folder / file))
        ]
    return rows[:limit]


def infer_task(path: str | os.PathLike) -> str | None:
    """The task whose data format a file has, from its name (``stsa.binary.*`` is SST-2) or its folder."""
    path = Path(path)
    if path.name.startswith("stsa.binary"):
        return "sst2"
    return path.parent.name if path.parent.name in TASKS else None


def read_task_file(task: str, path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """Read one task data file in its original format (see :func:`load_task`) through
    ``datasets.load_dataset``; the whole file is checked, then the first ``limit`` examples are returned.

    Raises:
        ValueError: naming the file and line (``path:line: problem``) of a malformed, truncated or
            unlabelled record (a :class:`TaskFileError`).
    """
    task, path = _check_task(task), Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None, got {limit!r}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    fmt, converter = _reader(task)
    try:
        examples = convert_rows(path, fmt, read_rows(path, fmt)[0], converter)
    except DataFileError as error:
        raise TaskFileError(error.path, error.line, error.problem, unit=error.unit) from None
    if not examples:
        raise ValueError(f"{path}: no examples")
    return examples[:limit]


def _reader(task: str) -> tuple[FileFormat, Callable[[Mapping[str, Any], int], dict | None]]:
    """The file format of a task's data and the converter of its rows (see :func:`load_task`)."""
    return _READERS[task]()


def _sst2_example(row: Mapping[str, Any], index: int) -> dict | None:
    line = row["text"]
    if not line.strip():
        return None
    label, _, sentence = line.partition(" ")
    if label not in ("0", "1") or not sentence.strip():
        raise _RowProblem(f"expected '<0|1> <sentence>', got {line.strip()[:80]!r}")
    return {"sentence": sentence.strip(), "label": int(label)}


def _agnews_example(row: Mapping[str, Any], index: int) -> dict | None:
    label = row["label"]
    if index == 0 and not label.strip().isdigit():
        return None  # header
    if label.strip() not in ("1", "2", "3", "4"):
        raise _RowProblem(f"{_AGNEWS_SHAPE}, got {list(row.values())!r:.120}")
    return {"text": f"{row['title'].strip()} {row['description'].strip()}", "label": int(label) - 1}


def _nli_example(task: str) -> Callable[[Mapping[str, Any], int], dict]:
    names = _CB_LABELS if task == "cb" else _RTE_LABELS
    fields = ("premise", "hypothesis") if task == "cb" else ("sentence1", "sentence2")

    def convert(row: Mapping[str, Any], index: int) -> dict:
        if any(row.get(key) is None for key in ("premise", "hypothesis", "label")):
            raise _RowProblem("expected an object with premise, hypothesis and label")
        if row["label"] not in names:
            raise _RowProblem(f"unknown label {row['label']!r}; expected one of {list(names)}")
        return {fields[0]: row["premise"], fields[1]: row["hypothesis"], "label": names[row["label"]]}

    return convert


# task -> (file format, row converter), built on use. AG News: header=False, since the released file has a
# header line and other copies of it do not (the converter skips a first row whose label is not a digit).
_READERS: dict[str, Callable[[], tuple[FileFormat, Callable[[Mapping[str, Any], int], dict | None]]]] = {
    "sst2": lambda: (text_format(), _sst2_example),
    "agnews": lambda: (
        csv_format(("label", "title", "description"), header=False, strict=False, shape_error=_AGNEWS_SHAPE),
        _agnews_example,
    ),
    "cb": lambda: (json_lines_format(), _nli_example("cb")),
    "rte": lambda: (json_lines_format(), _nli_example("rte")),
}


def _registered(task: str) -> Callable[..., list[dict]]:
    def load(data_dir: str | os.PathLike | None = None, limit: int | None = None) -> list[dict]:
        check_limit(limit)
        return [{"id": id_, **example} for id_, example in _labelled_rows(task, data_dir, limit, None)]

    load.__name__ = load.__qualname__ = f"load_{task}"
    load.__doc__ = f"The {task} examples of :func:`load_task` with ids ``{task}-<row>``."
    return register_data(task)(load)


load_sst2 = _registered("sst2")
load_agnews = _registered("agnews")


@register_data("cb")
def load_cb(
    data_dir: str | os.PathLike | None = None, limit: int | None = None, split: str = "val"
) -> list[dict]:
    """The cb examples of :func:`load_task` (``split`` ``"val"``, ``"train"`` or ``"both"``) with ids
    ``cb-<row>`` (val rows) and ``cb-train-<row>`` (train rows)."""
    check_limit(limit)
    return [{"id": id_, **example} for id_, example in _labelled_rows("cb", data_dir, limit, split)]


load_rte = _registered("rte")
