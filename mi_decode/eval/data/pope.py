"""POPE question files (Li et al., EMNLP 2023, "Evaluating Object Hallucination in Large Vision-Language
Models"): yes/no questions about whether an object is in an image.

Registered data set ``pope`` with the options ``questions`` (a POPE question file: JSON lines
``{"question_id", "image", "text", "label"}``, label ``yes``/``no``, despite POPE's ``.json`` names) and
``images`` (the image folder; POPE uses COCO val2014). Relative paths are inside the data folder; neither
file nor images have a Hub copy here. Examples: ``id`` (``"pope-<question_id>"``), ``image`` (the image's
path, a string), ``question``, ``label`` (``"yes"`` or ``"no"``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..registry import SuiteError, register_data
from .common import (
    DATA_DIR_ENV,
    DataFileError,
    DataNotFoundError,
    _RowProblem,
    check_limit,
    resolve_data_dir,
    row_id,
    text,
    unique_ids,
)  # fmt: skip
from .reading import convert_rows, json_format, locate, read_rows


@register_data("pope")
def load_pope(
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    *,
    questions: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
) -> list[dict]:
    """Read a POPE question file and check that the images of the examples returned exist.

    Args:
        data_dir: The data folder for relative paths; ``None`` uses ``$MI_DECODE_DATA_DIR``.
        limit: Keep the first ``limit`` questions (every row is checked; only the images of these must
            exist).
        questions: The question file (JSON lines).
        images: The image folder the file's ``image`` names are in.

    Raises:
        SuiteError: ``questions`` or ``images`` is not given.
        DataNotFoundError: the file or folder is missing.
        DataFileError: a bad row, or a missing image, with its line.
    """
    check_limit(limit)
    if questions is None or images is None:
        raise SuiteError(
            "data 'pope' needs the options 'questions' (a POPE question file) and 'images' (the image "
            "folder), e.g. data_options: {questions: pope/coco_pope_random.json, images: coco/val2014}"
        )
    questions_path, images_path = Path(questions).expanduser(), Path(images).expanduser()
    if not questions_path.is_absolute() or not images_path.is_absolute():
        folder = resolve_data_dir(data_dir)
        if folder is None:
            raise DataNotFoundError(
                f"POPE's questions and images are not on the Hub: pass --data-dir DIR (or set {DATA_DIR_ENV}) "
                f"with DIR/{questions} and DIR/{images}/"
            )
        questions_path, images_path = folder / questions_path, folder / images_path
    if not questions_path.is_file():
        raise DataNotFoundError(f"POPE question file not found: {questions_path}")
    if not images_path.is_dir():
        raise DataNotFoundError(f"POPE image folder not found: {images_path}")
    fmt = json_format(questions_path)
    rows, _ = read_rows(questions_path, fmt)
    examples = unique_ids(convert_rows(questions_path, fmt, rows, _pope_example(images_path)), questions_path)
    examples = examples[:limit]
    for index, example in enumerate(examples):
        if not Path(example["image"]).is_file():
            number, unit = locate(questions_path, fmt, index)
            raise DataFileError(questions_path, number, f"image not found: {example['image']}", unit=unit)
    return examples


def _pope_example(images: Path) -> Callable[[Mapping[str, Any], int], dict]:
    def convert(row: Mapping[str, Any], index: int) -> dict:
        question_id = row_id(row, "question_id")
        image = text(row, "image")
        question = text(row, "text")
        label = row.get("label")
        if not isinstance(label, str) or label.strip().lower() not in ("yes", "no"):
            raise _RowProblem(f"label must be yes or no, got {label!r}")
        return {
            "id": f"pope-{question_id}",
            "image": str(images / image),
            "question": question,
            "label": label.strip().lower(),
        }

    return convert
