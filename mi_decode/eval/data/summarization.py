"""CNN/DailyMail as used by Context-Aware Decoding (Shi et al. 2023)."""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from typing import Any

from .common import (
    CNNDM_FILE,
    CNNDM_HUB,
    CNNDM_HUB_ROWS,
    _check_count,
    _check_limit,
    _convert,
    _data_file,
    _hub_rows,
    _interleave_by,
    _read_jsonl,
    _row_id,
    _text,
    _unique_ids,
    resolve_data_dir,
)  # fmt: skip

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummarizationExample:
    """One CNN/DailyMail article with its reference summary. ``id`` is ``"cnndm-<id>"``."""

    id: str
    article: str
    reference: str


def load_cnndm(
    data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[SummarizationExample]:
    """Load the 300 CNN/DailyMail articles used by Context-Aware Decoding from
    ``summarization/cnndm_cad_300.jsonl`` (fields ``id, article, reference``).

    Without a data folder this set has no Hub copy: the loader warns and uses the first 300 test articles
    of ``abisee/cnn_dailymail`` (``3.0.0``) with their highlights as references, a different set.

    CAD's file holds 100 distinct articles, each on 3 consecutive rows; the rows are returned interleaved
    by article (every article's first row, then every second row, ...), so ``limit`` takes distinct
    articles first. ``id`` keeps the file's id.

    Args:
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``, else the Hub stand-in.
        limit: Keep the first ``limit`` rows of that order.

    Example:

    ```python
    >>> from mi_decode.eval_data import load_cnndm
    >>> [example.id for example in load_cnndm(limit=2)]  # doctest: +SKIP
    ['cnndm-0', 'cnndm-3']

    ```
    """
    _check_limit(limit)
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        path = _data_file(folder, CNNDM_FILE, "CNN/DailyMail")
        examples = _unique_ids(_convert(_read_jsonl(path), _cnndm_example, path), path)
        _check_count(examples, folder, CNNDM_FILE)
        # CAD's file is 100 articles x 3 consecutive rows (3 samples each): distinct articles first.
        return _interleave_by(examples, lambda example: example.article)[:limit]
    source, rows = _hub_rows("CNN/DailyMail", CNNDM_HUB, CNNDM_FILE)
    logger.warning(
        "CAD's 300 CNN/DailyMail articles have no Hub copy; using the first %d articles of %s instead (a "
        "different set: ROUGE is not comparable with CAD's). Pass a data folder for CAD's set.",
        CNNDM_HUB_ROWS,
        source,
    )
    renamed = ((number, {**row, "reference": row.get("highlights")}) for number, row in rows)
    return _convert(itertools.islice(renamed, CNNDM_HUB_ROWS), _cnndm_example, source, unit="row")[:limit]


def _cnndm_example(row: dict[str, Any], index: int) -> SummarizationExample:
    return SummarizationExample(
        id=f"cnndm-{_row_id(row)}", article=_text(row, "article"), reference=_text(row, "reference")
    )
