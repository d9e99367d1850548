"""Loaders for the text data of the evaluation suites: NQ-Swap and MemoTrap (grounding), CNN/DailyMail as
used by Context-Aware Decoding (summarization), and WikiText/book prefixes with human continuations
(open-ended generation).

Where the data comes from, in this order:

1. the ``data_dir`` argument (the CLI's ``--data-dir``);
2. the environment variable ``MI_DECODE_DATA_DIR``;
3. the Hugging Face Hub, by dataset name, through ``datasets.load_dataset`` (what a networked user gets).

A data folder is laid out like the project's ``shared/data`` (its README lists sources and licences)::

    grounding/nqswap/nqswap.jsonl.gz
    grounding/memotrap/{1-proverb-ending,2-proverb-translation,3-hate-speech-ending,
                        4-history-of-science-qa}.csv
    summarization/cnndm_cad_300.jsonl
    open_ended/{wikitext,book}_prompts.jsonl

Hub equivalents:

- NQ-Swap: ``pminervini/NQ-Swap``, split ``dev``: the same 4,746 rows.
- MemoTrap: ``pminervini/inverse-scaling``, config ``memo-trap``, split ``data``: the inverse-scaling-prize
  release, one table instead of four files. Its rows are assigned to the four tasks by prompt format
  (:func:`detect_memotrap_task`); which tasks it covers could not be checked offline.
- CNN/DailyMail: CAD's 300 articles have no Hub copy (their references are not the CNN/DM highlights).
  Without a data folder the loader falls back to the first 300 articles of ``abisee/cnn_dailymail``
  (config ``3.0.0``, split ``test``) with the highlights as references, and warns: a different set, so its
  ROUGE is not comparable with CAD's.
- Open-ended WikiText/book prompts: the prefixes and references of the Contrastive Decoding evaluation have
  no Hub copy; without a data folder the loader raises :class:`DataNotFoundError`.

Every loader parses the whole file and returns a list of small frozen dataclasses, each with a stable
string ``id``; ``limit`` keeps the first rows. A malformed file (invalid JSON, a missing or mistyped field,
truncated gzip data, wrong CSV columns, a row count that differs from the released file) raises
:class:`DataFileError` naming the file and the line, never a silently smaller set.
"""

from .common import DATA_DIR_ENV, DataFileError, DataNotFoundError, resolve_data_dir
from .grounding import (
    MEMOTRAP_TASKS,
    MemoTrapExample,
    MemoTrapSplit,
    NQSwapExample,
    detect_memotrap_task,
    load_memotrap,
    load_nqswap,
    split_memotrap_prompt,
)  # fmt: skip
from .open_ended import OPEN_ENDED_SOURCES, OpenEndedExample, load_open_ended
from .summarization import SummarizationExample, load_cnndm

__all__ = [
    "DATA_DIR_ENV",
    "MEMOTRAP_TASKS",
    "OPEN_ENDED_SOURCES",
    "DataFileError",
    "DataNotFoundError",
    "MemoTrapExample",
    "MemoTrapSplit",
    "NQSwapExample",
    "OpenEndedExample",
    "SummarizationExample",
    "detect_memotrap_task",
    "load_cnndm",
    "load_memotrap",
    "load_nqswap",
    "load_open_ended",
    "resolve_data_dir",
    "split_memotrap_prompt",
]
