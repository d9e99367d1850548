"""Open-ended prefixes with human continuations (WikiText-103 and book text, from the Contrastive Decoding
evaluation)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import (
    OPEN_ENDED_FILES,
    OPEN_ENDED_SOURCES,
    DataNotFoundError,
    _check_count,
    _check_limit,
    _convert,
    _data_file,
    _how_to_pass,
    _read_jsonl,
    _row_id,
    _text,
    _unique_ids,
    resolve_data_dir,
)  # fmt: skip


@dataclass(frozen=True)
class OpenEndedExample:
    """A text prefix with its human continuation. ``id`` is ``"<source>-<id>"``, ``source`` is
    ``"wikitext"`` or ``"book"``."""

    id: str
    source: str
    prefix: str
    reference: str


def load_open_ended(
    source: str, data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[OpenEndedExample]:
    """Load the open-ended prefixes with human continuations from ``open_ended/<source>_prompts.jsonl``
    (fields ``id, prefix, reference``): WikiText-103 (1,314 rows) or book/story text (1,947 rows), from the
    Contrastive Decoding evaluation. These have no Hub copy: without a data folder this raises.

    Args:
        source: ``"wikitext"`` or ``"book"``.
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``.
        limit: Keep the first ``limit`` rows.

    Example:

    ```python
    >>> from mi_decode.eval_data import load_open_ended
    >>> load_open_ended("wikitext", limit=1)[0].id  # doctest: +SKIP
    'wikitext-0'

    ```
    """
    if source not in OPEN_ENDED_FILES:
        raise ValueError(f"unknown open-ended source {source!r}; expected one of {OPEN_ENDED_SOURCES}")
    _check_limit(limit)
    relative = OPEN_ENDED_FILES[source]
    folder = resolve_data_dir(data_dir)
    if folder is None:
        raise DataNotFoundError(
            f"No data for the open-ended {source} prompts: no data folder was given, and this set (prefixes "
            f"and human continuations from the Contrastive Decoding evaluation) has no copy on the Hugging "
            f"Face Hub. {_how_to_pass(relative)}"
        )
    path = _data_file(folder, relative, f"open-ended {source}")
    examples = _unique_ids(_convert(_read_jsonl(path), _open_ended_example(source), path), path)
    _check_count(examples, folder, relative)
    return examples[:limit]


def _open_ended_example(source: str) -> Callable[[dict[str, Any], int], OpenEndedExample]:
    def convert(row: dict[str, Any], index: int) -> OpenEndedExample:
        return OpenEndedExample(
            id=f"{source}-{_row_id(row)}",
            source=source,
            prefix=_text(row, "prefix"),
            reference=_text(row, "reference"),
        )

    return convert
