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

import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any

# Registering needs no import here: the registry imports every module of this package on its first lookup,
# so a new set is one module.
from ..registry import DATA, SuiteError
from . import generic
from .bundled import bundled_examples
from .common import (
    DATA_DIR_ENV,
    FIELD_CHECKS,
    DataFileError,
    DataNotFoundError,
    _RowProblem,
    check_limit,
    resolve_data_dir,
    unique_ids,
    wants_hub,
)  # fmt: skip
from .generic import load_generic
from .grounding import (
    MEMOTRAP_TASKS,
    MemoTrapSplit,
    detect_memotrap_task,
    load_memotrap,
    load_nqswap,
    split_memotrap_prompt,
)
from .open_ended import OPEN_ENDED_SOURCES, load_book, load_open_ended, load_wikitext
from .pope import load_pope
from .prompt_selection import load_agnews, load_cb, load_rte, load_sst2
from .summarization import load_cnndm

logger = logging.getLogger(__name__)


def validate_data_spec(
    spec: Any,
    where: str,
    base_dir: str | os.PathLike | None,
    *,
    data_dir: str | os.PathLike | None = None,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Check a suite's ``data`` when the suite is parsed, before any model loads.

    A string must be a registered set (and ``options``, when given, keyword arguments its loader takes); a
    mapping must have only the known keys (``path``, ``name``, ``split``, ``fields``, ``id``), a string
    ``path`` and a mapping ``fields`` of strings, and a local-looking ``path`` (one with a file suffix)
    must exist in ``base_dir`` (the suite's folder) or the data folder (``data_dir``, else
    ``$MI_DECODE_DATA_DIR``).

    Raises:
        SuiteError: the message starts with ``where`` (e.g. the suite file and task).
    """
    prefix = f"{where}: " if where else ""
    if isinstance(spec, str):
        try:
            loader = DATA.get(spec, where)
        except SuiteError as error:
            if generic.looks_local(spec):
                raise SuiteError(f"{error}. For a file, write data: {{path: {spec}}}") from None
            raise
        if options:
            _check_options(spec, loader, options, prefix)
        return
    if not isinstance(spec, Mapping):
        raise SuiteError(
            f"{prefix}data must be a registered set ({', '.join(DATA.names())}) or a mapping with a 'path', "
            f"got {spec!r}"
        )
    generic.check_spec(spec, where)
    if options:
        raise SuiteError(
            f"{prefix}data_options apply to registered sets; a data mapping takes its settings as keys "
            f"({', '.join(generic.SPEC_KEYS)})"
        )
    if generic.looks_local(spec["path"]):
        try:
            generic.find_local(spec["path"], base_dir, data_dir, where)
        except DataNotFoundError as error:  # from find_local (prefixed) or a bad $MI_DECODE_DATA_DIR (not)
            message = str(error)
            raise SuiteError(message if message.startswith(prefix) else prefix + message) from None


def load_data(
    spec: Any,
    *,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    options: Mapping[str, Any] | None = None,
    base_dir: str | os.PathLike | None = None,
    required: Mapping[str, str] | None = None,
) -> list[dict]:
    """The examples of a suite's ``data``: a registered set's loader called with ``options`` as keyword
    arguments, or a mapping read by the generic loader (:mod:`mi_decode.eval.data.generic`; ``limit``
    keeps the first rows). Every example is then checked to have a unique string ``id`` and the
    ``required`` fields, ``{field: type}`` with the types ``"text"`` (a non-empty string), ``"texts"`` (a
    non-empty list of non-empty strings), ``"int"`` and ``"any"`` (present, not null).

    Raises:
        SuiteError: an unknown set, option or mapping key.
        DataNotFoundError: the data is not there (the message says what to pass).
        DataFileError: a bad row, naming the file (or the set) and the row or line:
            ``reviews.jsonl, line 3: missing field 'reference'``.

    Example: a JSON-lines file with its own column names.

    ```python
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from mi_decode.eval.data import load_data
    >>> folder = Path(tempfile.mkdtemp())
    >>> rows = [{"document": "The cat sat on the mat all day.", "summary": "A cat sat."},
    ...         {"document": "It rained in Paris on Monday.", "summary": "Rain in Paris."}]
    >>> _ = (folder / "reviews.jsonl").write_text("".join(json.dumps(row) + "\\n" for row in rows))
    >>> spec = {"path": "reviews.jsonl", "fields": {"article": "document", "reference": "summary"}}
    >>> examples = load_data(spec, data_dir=None, limit=None, options={}, base_dir=folder,
    ...                      required={"article": "text", "reference": "text"})
    >>> examples[1]
    {'id': 'reviews-1', 'article': 'It rained in Paris on Monday.', 'reference': 'Rain in Paris.'}
    >>> load_data(spec, base_dir=folder, required={"question": "text"})
    Traceback (most recent call last):
    ...
    mi_decode.eval.data.common.DataFileError: ...reviews.jsonl, line 1: missing field 'question' (...)

    ```
    """
    check_limit(limit)
    options = dict(options or {})
    if isinstance(spec, str):
        loader = DATA.get(spec)
        _check_options(spec, loader, options, "")
        examples = None
        if resolve_data_dir(data_dir) is None and not wants_hub(data_dir):
            examples = bundled_examples(spec, options, limit)  # None where the bundle does not cover it
        if examples is None:
            examples = loader(data_dir, limit, **options)
        if limit is not None and len(examples) > limit:  # MemoTrap: the limit applies to each of its files
            logger.warning(
                "data %r: the limit %d applies to each of its parts, so it gives %d examples",
                spec,
                limit,
                len(examples),
            )
        source = spec

        def locate(index: int) -> tuple[int, str]:
            return index + 1, "row"

        hint, columns = "", {}
    elif isinstance(spec, Mapping):
        if options:
            raise SuiteError(
                "data_options apply to registered sets; a data mapping takes its settings as keys "
                f"({', '.join(generic.SPEC_KEYS)})"
            )
        examples, source, locate = generic.load_generic_with_source(spec, data_dir, limit, base_dir=base_dir)
        hint = "map a column onto it with fields: {{{field}: COLUMN}}"
        columns = dict(spec.get("fields") or {})  # field -> the user's column
    else:
        raise SuiteError(f"data must be a registered set's name or a mapping with a 'path', got {spec!r}")
    _check_examples(examples, source, locate, required or {}, hint, columns)
    return examples


def _check_examples(
    examples, source: str, locate, required: Mapping[str, str], hint: str, columns: Mapping[str, str]
) -> None:
    """DataFileError for the first example without a unique id or a ``required`` field of its type; a field
    mapped from a column is named with that column, as the user wrote it."""
    unknown = sorted(kind for kind in required.values() if kind not in FIELD_CHECKS)
    if unknown:
        raise ValueError(f"unknown field types {unknown}; expected some of {sorted(FIELD_CHECKS)}")
    if not isinstance(examples, list):
        raise TypeError(f"data {source!r} returned {type(examples).__name__}, not a list of dicts")
    for index, example in enumerate(examples):
        try:
            if not isinstance(example, Mapping):
                raise _RowProblem(f"an example must be a dict, got {type(example).__name__}")
            if not isinstance(example.get("id"), str) or not example["id"]:
                raise _RowProblem(f"field 'id' must be a non-empty string, got {example.get('id')!r}")
            for field, kind in required.items():
                FIELD_CHECKS[kind](example, field)
        except _RowProblem as problem:
            message = str(problem)
            field = message.split("'")[1] if "field '" in message else None
            if field in columns:
                message = message.replace(
                    f"field {field!r}", f"field {field!r} (column {columns[field]!r})", 1
                )
            if hint and message.startswith("missing field"):
                present = ", ".join(columns.get(key, key) for key in example if key != "id")
                message += f" (columns: {present}; {hint.format(field=field)})"
            number, unit = locate(index)
            raise DataFileError(source, number, message, unit=unit) from None
    unique_ids(examples, source)


def _check_options(name: str, loader, options: Mapping[str, Any], prefix: str) -> None:
    """SuiteError for an option the loader does not take (``data_dir`` and ``limit`` are not options)."""
    try:
        parameters = inspect.signature(loader).parameters
    except (TypeError, ValueError):  # a builtin or C callable: let the call decide
        return
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    accepted = [
        key
        for key, parameter in list(parameters.items())[2:]
        if parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise SuiteError(
            f"{prefix}data {name!r} takes no option(s) {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(accepted) or 'none'}"
        )


__all__ = [
    "DATA_DIR_ENV",
    "MEMOTRAP_TASKS",
    "OPEN_ENDED_SOURCES",
    "DataFileError",
    "DataNotFoundError",
    "MemoTrapSplit",
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
    "resolve_data_dir",
    "split_memotrap_prompt",
    "validate_data_spec",
]
