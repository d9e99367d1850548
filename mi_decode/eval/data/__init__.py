"""The data of the evaluation suites, read through ``datasets.load_dataset``.

A suite names its data in one of two ways:

- a **registered set** (``data: nqswap``), a loader ``loader(data_dir, limit, **options) -> list[dict]``
  registered with :func:`mi_decode.eval.registry.register_data`; the suite's ``data_options`` are its
  keyword arguments. Built in: ``nqswap`` and ``memotrap`` (grounding, option ``tasks``), ``cnndm``
  (summarization), ``wikitext`` and ``book`` (open-ended generation), ``sst2``, ``agnews``, ``cb``, ``rte``
  (prompt selection) and ``pope`` (options ``questions``, ``images``);
- a **mapping** for any file or Hub dataset, with its columns mapped onto the fields the task needs
  (``data: {path: reviews.jsonl, fields: {article: document, reference: summary}}``, see
  :mod:`mi_decode.eval.data.generic`).

Either is parsed once, when the suite is, into a frozen spec that loads it (:mod:`mi_decode.eval.data.spec`:
``TaskSpec.data``).

A new registered set is one module of this package (or of a package declared under the ``mi_decode.eval``
entry point), imported by the registry on its first lookup: it declares its released files with their row
counts (:class:`~mi_decode.eval.data.reading.DataFile`, which reads a file and checks its count) and its
Hub copy, and registers its loader with ``@register_data``.

Where the built-in sets come from, in this order:

1. the ``data_dir`` argument (the CLI's ``--data-dir``);
2. the environment variable ``MI_DECODE_DATA_DIR``;
3. the ``evals/data`` folder of the mi_decode checkout: the one the current directory is in, else the one
   the package is installed from (editable);
4. the quick subsets bundled in the package (:mod:`mi_decode.eval.data.bundled`), for the requests they
   cover (``--quick``);
5. the Hugging Face Hub, by dataset name, through ``datasets.load_dataset`` (what a networked user gets).

``data_dir="hub"`` (``--data-dir hub``, ``MI_DECODE_DATA_DIR=hub``) skips 3 and 4: the Hub only.

A data folder is laid out like the repository's ``evals/data`` (its README lists sources, licences, row
counts and hashes)::

    grounding/nqswap/nqswap.jsonl.gz
    grounding/memotrap/{1-proverb-ending,2-proverb-translation,3-hate-speech-ending,
                        4-history-of-science-qa}.csv
    summarization/cnndm_cad_300.jsonl
    open_ended/{wikitext,book}_prompts.jsonl
    prompt_selection/data/{sst2/stsa.binary.dev,agnews/test.csv,cb/val.jsonl,rte/val.jsonl}
    prompt_selection/templates/<dataset>/templates.yaml

Hub equivalents:

- NQ-Swap: ``pminervini/NQ-Swap``, split ``dev``: the same 4,746 rows.
- MemoTrap: ``pminervini/inverse-scaling``, config ``memo-trap``, split ``data``: the inverse-scaling-prize
  release, one table instead of four files. Its rows are assigned to the four tasks by prompt format
  (:func:`detect_memotrap_task`); which tasks it covers could not be checked offline.
- CNN/DailyMail: CAD's 300 articles have no Hub copy (their references are not the CNN/DM highlights).
  Without a data folder the loader falls back to the first 300 articles of ``abisee/cnn_dailymail``
  (config ``3.0.0``, split ``test``) with the highlights as references, and warns: a different set, so its
  ROUGE is not comparable with CAD's.
- Open-ended WikiText/book prompts, the prompt-selection sets and POPE have no Hub copy; without a data
  folder their loaders raise :class:`DataNotFoundError`.

Every loader reads the whole file and returns a list of plain dicts, each with a stable, unique string
``id``; ``limit`` keeps the first rows. ``datasets`` caches each file as Arrow (``$HF_DATASETS_CACHE``,
17 MB for all built-in sets): on 2 CPU cores the first load of all nine text sets builds it in 0.8 s (0.5 s
of it NQ-Swap), later loads map it and take 0.2 s, as long as the former hand-written readers (plus 0.7 s
to import ``datasets`` once). A malformed file (invalid JSON, a missing or mistyped field, truncated gzip
data, wrong CSV columns, an empty file, a row count that differs from the released file) raises
:class:`DataFileError` naming the file and the line, never a silently smaller set.
"""

from __future__ import annotations

# The public names of the data wing. Registering needs no import here: the registry imports every module of
# this package on its first lookup, so a new set is one module.
from .common import DATA_DIR_ENV, DataFileError, DataNotFoundError, DataSpec, resolve_data_dir
from .generic import MappedData, load_generic
from .grounding import (
    MEMOTRAP_TASKS,
    MemoTrapSplit,
    detect_memotrap_task,
    load_memotrap,
    load_nqswap,
    split_memotrap_prompt,
)  # fmt: skip
from .open_ended import OPEN_ENDED_SOURCES, load_book, load_open_ended, load_wikitext
from .pope import load_pope
from .prompt_selection import load_agnews, load_cb, load_rte, load_sst2
from .spec import RegisteredData, load_data, parse_data_spec, validate_data_spec
from .summarization import load_cnndm

__all__ = [
    "DATA_DIR_ENV",
    "MEMOTRAP_TASKS",
    "OPEN_ENDED_SOURCES",
    "DataFileError",
    "DataNotFoundError",
    "DataSpec",
    "MappedData",
    "MemoTrapSplit",
    "RegisteredData",
    "detect_memotrap_task",
    "load_agnews",
    "load_book",
    "load_cb",
    "load_cnndm",
    "load_data",
    "load_generic",
    "load_memotrap",
    "load_nqswap",
    "load_open_ended",
    "load_pope",
    "load_rte",
    "load_sst2",
    "load_wikitext",
    "parse_data_spec",
    "resolve_data_dir",
    "split_memotrap_prompt",
    "validate_data_spec",
]
