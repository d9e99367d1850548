"""A suite's ``data`` (with ``data_options``), parsed once into a frozen spec that loads it.

:func:`parse_data_spec` is the one parse: a registered set's name becomes a :class:`RegisteredData` (its
options checked against the loader's keyword arguments), a mapping a
:class:`~mi_decode.eval.data.generic.MappedData`. A suite does it when it is parsed
(:func:`validate_data_spec`, which also looks for a local file), and ``TaskSpec.data`` holds the result;
:func:`load_data` does it for a str or dict given in Python. A spec's :meth:`~DataSpec.suite_form` and
:meth:`~DataSpec.suite_options` give back what the suite wrote, for fingerprints and reports.

Example:

```python
>>> from mi_decode.eval.data import parse_data_spec
>>> spec = parse_data_spec("memotrap", {"tasks": ["proverb-ending"]})
>>> spec
RegisteredData(name='memotrap', options=(('tasks', ['proverb-ending']),))
>>> spec.suite_form(), spec.suite_options()
('memotrap', {'tasks': ['proverb-ending']})
>>> parse_data_spec("memotrap", {"task": ["proverb-ending"]}, where="s.yaml: task 'm'")
Traceback (most recent call last):
...
mi_decode.eval.registry.SuiteError: s.yaml: task 'm': data 'memotrap' takes no option(s) 'task'; its options: tasks

```
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any

from ..registry import DATA, SuiteError
from . import generic
from .bundled import bundled_examples
from .common import (
    BUNDLED_SOURCE,
    DataSpec,
    Locator,
    by_row,
    check_limit,
    note_source,
    recording_sources,
    resolve_data_dir,
    shown_path,
    wants_hub,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RegisteredData(DataSpec):
    """A registered set (:func:`mi_decode.eval.registry.register_data`) by ``name``, with the keyword
    arguments of its loader (the suite's ``data_options``) as ``(option, value)`` pairs.

    Served from the package's quick subsets (:mod:`mi_decode.eval.data.bundled`) when no data folder is
    given or found and they cover the request, else by the loader.
    """

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def read(self, data_dir: str | os.PathLike | None, limit: int | None) -> tuple[list[dict], str, Locator]:
        check_limit(limit)
        options = dict(self.options)
        examples = None
        folder = resolve_data_dir(data_dir)
        if folder is None and not wants_hub(data_dir):
            examples = bundled_examples(self.name, options, limit)  # None where the bundle does not cover it
            if examples is not None:
                note_source(BUNDLED_SOURCE)
        if examples is None:
            with recording_sources() as inner:  # the loader says where it went when it used the Hub
                examples = DATA.get(self.name)(data_dir, limit, **options)
            for source in inner or ([f"the data folder {shown_path(folder)}"] if folder is not None else []):
                note_source(source)
        if limit is not None and len(examples) > limit:  # MemoTrap: the limit applies to each of its files
            logger.warning(
                "data %r: the limit %d applies to each of its parts, so it gives %d examples",
                self.name,
                limit,
                len(examples),
            )
        return examples, self.name, by_row

    def suite_form(self) -> str:
        return self.name

    def suite_options(self) -> dict[str, Any]:
        return dict(self.options)


def parse_data_spec(
    data: Any,
    options: Mapping[str, Any] | None = None,
    *,
    where: str | None = None,
    base_dir: str | os.PathLike | None = None,
) -> DataSpec:
    """The spec of a suite's ``data`` and ``data_options``: a registered set's name (whose loader must take
    every option) or a mapping with only the known keys (see :mod:`mi_decode.eval.data.generic`; it takes
    no options, its relative path is looked up in ``base_dir`` first). A spec is returned as it is.

    Raises:
        SuiteError: an unknown set, option or mapping key, a malformed mapping; the message starts with
            ``where`` (e.g. the suite file and task) when given.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(data, DataSpec):
        if options:
            raise SuiteError(f"{prefix}a parsed data spec holds its options; got options {dict(options)!r}")
        return data
    if isinstance(data, str):
        try:
            loader = DATA.get(data, where)
        except SuiteError as error:
            if generic.looks_local(data):
                raise SuiteError(f"{error}. For a file, write data: {{path: {data}}}") from None
            raise
        options = dict(options or {})
        _check_options(data, loader, options, prefix)
        return RegisteredData(data, tuple(options.items()))
    if not isinstance(data, Mapping):
        raise SuiteError(
            f"{prefix}data must be a registered set ({', '.join(DATA.names())}) or a mapping with a 'path', "
            f"got {data!r}"
        )
    spec = generic.parse_mapping(data, where, base_dir)
    if options:
        raise SuiteError(
            f"{prefix}data_options apply to registered sets; a data mapping takes its settings as keys "
            f"({', '.join(generic.SPEC_KEYS)})"
        )
    return spec


def validate_data_spec(
    data: Any,
    where: str,
    base_dir: str | os.PathLike | None,
    *,
    data_dir: str | os.PathLike | None = None,
    options: Mapping[str, Any] | None = None,
) -> DataSpec:
    """:func:`parse_data_spec` when a suite is parsed, before any model loads: also a local-looking mapped
    ``path`` (one with a file suffix) must exist in ``base_dir`` (the suite's folder) or the data folder
    (``data_dir``, else ``$MI_DECODE_DATA_DIR``).

    Raises:
        SuiteError: the message starts with ``where`` (e.g. the suite file and task).
    """
    spec = parse_data_spec(data, options, where=where, base_dir=base_dir)
    spec.check_found(where, data_dir)
    return spec


def load_data(
    spec: Any,
    *,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    options: Mapping[str, Any] | None = None,
    base_dir: str | os.PathLike | None = None,
    required: Mapping[str, str] | None = None,
) -> list[dict]:
    """The examples of a suite's ``data`` given in Python (a registered set's name with its ``options``, a
    mapping, or a parsed spec), parsed by :func:`parse_data_spec` and loaded: a registered set's loader
    called with ``options`` as keyword arguments, or a mapping read by the generic loader
    (:mod:`mi_decode.eval.data.generic`; ``limit`` keeps the first rows). Every example is then checked to
    have a unique string ``id`` and the ``required`` fields, ``{field: type}`` with the types ``"text"`` (a
    non-empty string), ``"texts"`` (a non-empty list of non-empty strings), ``"int"`` and ``"any"``
    (present, not null).

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
    parsed = parse_data_spec(spec, options, base_dir=base_dir)
    return parsed.load(data_dir=data_dir, limit=limit, required=required)


def _check_options(name: str, loader, options: Mapping[str, Any], prefix: str) -> None:
    """SuiteError for an option the loader does not take (``data_dir`` and ``limit`` are not options)."""
    if not options:
        return
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
