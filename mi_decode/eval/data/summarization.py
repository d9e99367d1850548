"""CNN/DailyMail as used by Context-Aware Decoding (Shi et al. 2023).

Registered data set ``cnndm``: ``summarization/cnndm_cad_300.jsonl``, JSON lines ``id, article, reference``
(3-sentence reference summaries), 300 rows: 100 distinct articles, each on 3 consecutive rows. Examples:
``id`` (``"cnndm-<file id>"``), ``article``, ``reference``. The set has no Hub copy; without a data folder
the loader falls back to the first 300 test articles of ``abisee/cnn_dailymail`` (config ``3.0.0``) with
their highlights as references, and warns: a different set, so its ROUGE is not comparable with CAD's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ..registry import register_data
from .common import (
    check_limit,
    convert_hub_rows,
    hub_dataset,
    interleave_by,
    resolve_data_dir,
    row_id,
    text,
    unique_ids,
)  # fmt: skip
from .reading import DataFile

CNNDM_FILE = DataFile("summarization/cnndm_cad_300.jsonl", rows=300, title="CNN/DailyMail")
# The Hub stand-in (repo, config, split): CAD's articles have no Hub copy; as many test articles as CAD's set.
CNNDM_HUB = ("abisee/cnn_dailymail", "3.0.0", "test")
CNNDM_HUB_ROWS = 300

logger = logging.getLogger(__name__)


@register_data("cnndm")
def load_cnndm(data_dir: str | os.PathLike | None = None, limit: int | None = None) -> list[dict]:
    """Load the 300 CNN/DailyMail articles used by Context-Aware Decoding from
    ``summarization/cnndm_cad_300.jsonl`` (fields ``id, article, reference``).

    Without a data folder this set has no Hub copy: the loader warns and uses the first 300 test articles
    of ``abisee/cnn_dailymail`` (``3.0.0``) with their highlights as references, a different set.

    CAD's file holds 100 distinct articles, each on 3 consecutive rows; the rows are returned interleaved
    by article (every article's first row, then every second row, ...), so ``limit`` takes distinct
    articles first. Each example is a dict ``{"id": "cnndm-<file id>", "article": ..., "reference": ...}``.

    Args:
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``, else the Hub stand-in.
        limit: Keep the first ``limit`` rows of that order.

    Example:

    ```python
    >>> from mi_decode.eval.data import load_cnndm
    >>> [example["id"] for example in load_cnndm(limit=2)]  # doctest: +SKIP
    ['cnndm-0', 'cnndm-3']

    ```
    """
    check_limit(limit)
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        examples = CNNDM_FILE.read(folder, _cnndm_example)
        # CAD's file is 100 articles x 3 consecutive rows (3 samples each): distinct articles first.
        return interleave_by(examples, "article")[:limit]
    source, dataset = hub_dataset("CNN/DailyMail", CNNDM_HUB, CNNDM_FILE.relative)
    logger.warning(
        "CAD's 300 CNN/DailyMail articles have no Hub copy; using the first %d articles of %s instead (a "
        "different set: ROUGE is not comparable with CAD's). Pass a data folder for CAD's set.",
        CNNDM_HUB_ROWS,
        source,
    )
    if len(dataset) > CNNDM_HUB_ROWS:
        dataset = dataset.select(range(CNNDM_HUB_ROWS))  # the test split has 11,490 articles
    renamed = ({**row, "reference": row.get("highlights")} for row in dataset)
    return unique_ids(convert_hub_rows(renamed, _cnndm_example, source), source)[:limit]


def _cnndm_example(row: Mapping[str, Any], index: int) -> dict:
    return {
        "id": f"cnndm-{row_id(row)}",
        "article": text(row, "article"),
        "reference": text(row, "reference"),
    }
