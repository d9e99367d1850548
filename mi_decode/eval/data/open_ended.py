"""Open-ended prefixes with human continuations (WikiText-103 and book text, from the Contrastive Decoding
evaluation).

Registered data sets ``wikitext`` (``open_ended/wikitext_prompts.jsonl``, 1,314 rows) and ``book``
(``open_ended/book_prompts.jsonl``, 1,947 rows): JSON lines ``id, prefix, reference`` (reference about 256
tokens). Examples: ``id`` (``"<source>-<file id>"``), ``source``, ``prefix``, ``reference``. These sets have
no Hub copy: without a data folder the loaders raise :class:`DataNotFoundError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ..registry import register_data
from .common import (
    DataNotFoundError,
    check_limit,
    how_to_pass,
    resolve_data_dir,
    row_id,
    text,
)  # fmt: skip
from .reading import DataFile

OPEN_ENDED_FILES = {
    "wikitext": DataFile("open_ended/wikitext_prompts.jsonl", rows=1314, title="open-ended wikitext"),
    "book": DataFile("open_ended/book_prompts.jsonl", rows=1947, title="open-ended book"),
}
OPEN_ENDED_SOURCES = tuple(OPEN_ENDED_FILES)


def load_open_ended(
    source: str, data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[dict]:
    """Load the open-ended prefixes with human continuations from ``open_ended/<source>_prompts.jsonl``
    (fields ``id, prefix, reference``): WikiText-103 (1,314 rows) or book/story text (1,947 rows), from the
    Contrastive Decoding evaluation. These have no Hub copy: without a data folder this raises. The
    registered sets ``wikitext`` and ``book`` call this.

    Each example is a dict ``{"id": "<source>-<file id>", "source": ..., "prefix": ..., "reference": ...}``.

    Args:
        source: ``"wikitext"`` or ``"book"``.
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``.
        limit: Keep the first ``limit`` rows.

    Example:

    ```python
    >>> from mi_decode.eval.data import load_open_ended
    >>> load_open_ended("wikitext", limit=1)[0]["id"]  # doctest: +SKIP
    'wikitext-0'

    ```
    """
    if source not in OPEN_ENDED_FILES:
        raise ValueError(f"unknown open-ended source {source!r}; expected one of {OPEN_ENDED_SOURCES}")
    check_limit(limit)
    file = OPEN_ENDED_FILES[source]
    folder = resolve_data_dir(data_dir)
    if folder is None:
        raise DataNotFoundError(
            f"No data for the open-ended {source} prompts: no data folder was given, and this set (prefixes "
            f"and human continuations from the Contrastive Decoding evaluation) has no copy on the Hugging "
            f"Face Hub. {how_to_pass(file.relative)}"
        )
    return file.read(folder, _open_ended_example(source))[:limit]


@register_data("wikitext")
def load_wikitext(data_dir: str | os.PathLike | None = None, limit: int | None = None) -> list[dict]:
    """WikiText-103 prefixes with human continuations (:func:`load_open_ended` ``"wikitext"``)."""
    return load_open_ended("wikitext", data_dir, limit=limit)


@register_data("book")
def load_book(data_dir: str | os.PathLike | None = None, limit: int | None = None) -> list[dict]:
    """Book/story prefixes with human continuations (:func:`load_open_ended` ``"book"``)."""
    return load_open_ended("book", data_dir, limit=limit)


def _open_ended_example(source: str) -> Callable[[Mapping[str, Any], int], dict]:
    def convert(row: Mapping[str, Any], index: int) -> dict:
        return {
            "id": f"{source}-{row_id(row)}",
            "source": source,
            "prefix": text(row, "prefix"),
            "reference": text(row, "reference"),
        }

    return convert
