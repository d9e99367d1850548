"""Any data set, given in a suite as a mapping instead of a registered name::

    data: {path: reviews.jsonl, fields: {article: document, reference: summary}}
    data: {path: some-org/some-dataset, name: config, split: test, fields: {article: text}}

Keys:

- ``path``: a local file, JSON lines or a JSON list (``.jsonl``, ``.json``, either ``.gz``), CSV (``.csv``,
  ``.csv.gz``; a header line names the columns) or Parquet (``.parquet``). A relative path is looked up in
  ``base_dir`` (the suite file's folder), then in the data folder. Anything else without a file suffix is
  a Hugging Face Hub dataset id.
- ``name``: the Hub dataset's config; ``split``: its split (default ``"train"``; a local file has only that).
- ``fields``: *field the task needs* -> *column in the file*; the mapped columns are renamed, every other
  column is kept as it is.
- ``id``: the column holding the example ids (integers or non-empty strings, unique). Default
  ``"<file stem>-<row>"`` with the 0-based row (``reviews-0``, ``reviews-1``, ...; for a Hub dataset the
  stem is the part of its id after the ``/``). The ``id`` always holds this, whatever a column named
  ``id`` holds (``id: id`` uses that column).

Everything is read through ``datasets.load_dataset`` (``json``, ``csv``, ``parquet``, or the Hub id);
the examples are plain dicts in file order, ``limit`` keeps the first rows. A mapping is parsed once, when
the suite is (:func:`parse_mapping`), into a :class:`MappedData`, which loads it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..registry import SuiteError
from . import common
from .common import (
    DataFileError,
    DataNotFoundError,
    DataSpec,
    Locator,
    _one_line,
    _RowProblem,
    by_row,
    check_limit,
    resolve_data_dir,
    row_id,
    unique_ids,
)  # fmt: skip
from .reading import (
    FileFormat,
    csv_format,
    describe_columns,
    json_format,
    locate,
    parquet_format,
    read_rows,
)  # fmt: skip

SPEC_KEYS = ("path", "name", "split", "fields", "id")
# suffix -> reader; .gz is allowed in front of the JSON and CSV suffixes.
_READERS: dict[str, Callable[[Path], FileFormat]] = {
    ".jsonl": json_format,
    ".json": json_format,
    ".csv": lambda path: csv_format(),
    ".parquet": lambda path: parquet_format(),
}
_GZIP_OK = {".jsonl", ".json", ".csv"}
SUPPORTED = ".jsonl, .json, .csv, .parquet (.gz allowed for JSON and CSV)"


def _prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


@dataclasses.dataclass(frozen=True)
class MappedData(DataSpec):
    """A suite's data given as a mapping (see the module docstring), parsed by :func:`parse_mapping`:
    ``path`` (a local file or a Hub id), the Hub ``name`` (config) and ``split``, ``fields`` (field ->
    column pairs), the ``id`` column, and ``base_dir``, the suite's folder, where a relative path is looked
    for first.

    Example:

    ```python
    >>> from mi_decode.eval.data.generic import parse_mapping
    >>> spec = parse_mapping({"path": "some-org/reviews", "split": "test", "fields": {"article": "text"}})
    >>> spec.path, spec.split, spec.fields
    ('some-org/reviews', 'test', (('article', 'text'),))
    >>> spec.suite_form()
    {'path': 'some-org/reviews', 'split': 'test', 'fields': {'article': 'text'}}

    ```
    """

    path: str
    name: str | None = None
    split: str | None = None
    fields: tuple[tuple[str, str], ...] | None = None  # None where the suite wrote none (or null)
    id: str | None = None
    base_dir: str | None = dataclasses.field(default=None, compare=False)  # as TaskSpec.base_dir
    # The keys the suite wrote, in its order, so that suite_form() gives back exactly what it wrote.
    written: tuple[str, ...] = dataclasses.field(default=("path",), compare=False, repr=False)

    missing_field_hint = "map a column onto it with fields: {{{field}: COLUMN}}"

    def check_found(self, where: str, data_dir: str | os.PathLike | None = None) -> None:
        """A local-looking ``path`` must be in ``base_dir`` or the data folder (``data_dir``, else
        ``$MI_DECODE_DATA_DIR``); a Hub id is not checked (that would need the network)."""
        if not looks_local(self.path):
            return
        prefix = _prefix(where)
        try:
            find_local(self.path, self.base_dir, data_dir, where)
        except DataNotFoundError as error:  # from find_local (prefixed) or a bad $MI_DECODE_DATA_DIR (not)
            message = str(error)
            raise SuiteError(message if message.startswith(prefix) else prefix + message) from None

    def suite_form(self) -> dict[str, Any]:
        values = {
            "path": self.path,
            "name": self.name,
            "split": self.split,
            "fields": None if self.fields is None else dict(self.fields),
            "id": self.id,
        }
        return {key: values[key] for key in self.written}

    def columns(self) -> dict[str, str]:
        return dict(self.fields or ())

    def read(
        self, data_dir: str | os.PathLike | None = None, limit: int | None = None
    ) -> tuple[list[dict], str, Locator]:
        """The examples in file order (the first ``limit``), the file's path or the Hub id, and the
        :data:`~mi_decode.eval.data.common.Locator` of their lines (or rows); no field checks (see
        :meth:`load`)."""
        check_limit(limit)
        fields = dict(self.fields or ())
        id_column, path = self.id, self.path
        if looks_local(path):
            file = find_local(path, self.base_dir, data_dir)
            fmt = _READERS[reader_suffix(path)](file)
            rows, columns = read_rows(file, fmt)
            _check_columns(file, columns, fields, id_column)
            ids = _ids(file, rows, id_column, _stem(file.name), lambda index: locate(file, fmt, index))
            rows, ids = rows[:limit], ids[:limit]
            common.note_source(f"the file {common.shown_path(file)}")
            return (
                [_example(row, ident, fields) for row, ident in zip(rows, ids, strict=True)],
                str(file),
                (lambda index: locate(file, fmt, index)),
            )
        dataset, source = _hub(path, self.name, self.split or "train")
        columns = list(dataset.column_names)
        _check_columns(source, columns, fields, id_column)
        if id_column is not None:
            id_rows = [{id_column: value} for value in dataset[id_column]]
        else:
            id_rows = [{}] * len(dataset)
        ids = _ids(source, id_rows, id_column, path.rsplit("/", 1)[-1], by_row)
        if limit is not None and limit < len(dataset):
            dataset = dataset.select(range(limit))
        rows = dataset.to_list()
        if not rows:
            raise DataFileError(source, None, "has no data rows")
        return (
            [_example(row, ident, fields) for row, ident in zip(rows, ids, strict=False)],
            source,
            by_row,
        )


def parse_mapping(
    spec: Mapping[str, Any], where: str | None = None, base_dir: str | os.PathLike | None = None
) -> MappedData:
    """The :class:`MappedData` of a data mapping. Raises :class:`SuiteError` (prefixed with ``where``)
    unless ``spec`` has only known keys, a string ``path``, string ``name``, ``split`` and ``id``, and a
    mapping ``fields`` of strings; a local file must have a supported type and no ``name`` or ``split``."""
    prefix = _prefix(where)
    unknown = [key for key in spec if key not in SPEC_KEYS]
    if unknown:
        raise SuiteError(
            f"{prefix}unknown data key(s) {', '.join(map(repr, unknown))}; a data mapping takes "
            f"{', '.join(SPEC_KEYS)}"
        )
    path = spec.get("path")
    if not isinstance(path, str) or not path.strip():
        raise SuiteError(f"{prefix}data needs 'path': a file or a Hub dataset id (a string), got {path!r}")
    for key in ("name", "split", "id"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise SuiteError(f"{prefix}data {key!r} must be a non-empty string, got {value!r}")
    fields = spec.get("fields")
    if fields is not None:
        if not isinstance(fields, Mapping):
            raise SuiteError(
                f"{prefix}data 'fields' must map fields to columns ({{field: column}}), got {fields!r}"
            )
        for field, column in fields.items():
            if not isinstance(field, str) or not field or not isinstance(column, str) or not column:
                raise SuiteError(
                    f"{prefix}data 'fields' must map field names to column names (strings), got "
                    f"{field!r}: {column!r}"
                )
            if field == "id":
                raise SuiteError(
                    f"{prefix}data 'fields' cannot map 'id'; name the id column with 'id: COLUMN'"
                )
    if looks_local(path):
        reader_suffix(path, where)
        if spec.get("name") is not None or spec.get("split", "train") != "train":
            raise SuiteError(
                f"{prefix}data 'name' and 'split' select a Hub dataset's config and split; the local file "
                f"{path!r} has one split"
            )
    return MappedData(
        path=path,
        name=spec.get("name"),
        split=spec.get("split"),
        fields=None if fields is None else tuple(fields.items()),
        id=spec.get("id"),
        base_dir=None if base_dir is None else str(base_dir),
        written=tuple(spec),
    )


def looks_local(path: str) -> bool:
    """Whether ``path`` names a file rather than a Hub id (``name`` or ``org/name``): it has a file suffix,
    starts like a path (``/``, ``.``, ``~``) or has more than one ``/``."""
    return (
        bool(PurePosixPath(path).suffix)
        or path.startswith(("/", ".", "~"))
        or "\\" in path
        or path.count("/") > 1
        or Path(path).is_absolute()
    )


def reader_suffix(path: str, where: str | None = None) -> str:
    """The format suffix of a local path (``.jsonl`` for ``x.jsonl.gz``); SuiteError if unsupported."""
    suffixes = [suffix.lower() for suffix in PurePosixPath(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
        if suffixes and suffixes[-1] in _GZIP_OK:
            return suffixes[-1]
    elif suffixes and suffixes[-1] in _READERS:
        return suffixes[-1]
    raise SuiteError(f"{_prefix(where)}data file {path!r} has an unsupported type; use {SUPPORTED}")


def candidate_paths(
    path: str, base_dir: str | os.PathLike | None, data_dir: str | os.PathLike | None
) -> list[Path]:
    """Where a local ``path`` is looked for, in order: as is if absolute, else ``base_dir``, then the data
    folder (``data_dir``, else ``$MI_DECODE_DATA_DIR``)."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return [given]
    places = []
    if base_dir is not None:
        places.append(Path(base_dir) / given)
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        places.append(folder / given)
    return places


def find_local(path: str, base_dir, data_dir, where: str | None = None) -> Path:
    """The file a local ``path`` names; :class:`DataNotFoundError` naming where it was looked for."""
    given = Path(path).expanduser()
    if not given.is_absolute() and base_dir is not None and (Path(base_dir) / given).is_file():
        return Path(base_dir) / given  # found without consulting the data folder
    places = candidate_paths(path, base_dir, data_dir)
    for place in places:
        if place.is_file():
            return place
        if place.is_dir():
            raise DataNotFoundError(
                f"{_prefix(where)}data path {str(place)!r} is a folder; name a file ({SUPPORTED})"
            )
    if not places:
        raise DataNotFoundError(
            f"{_prefix(where)}data file {path!r} not found: it is relative and there is no suite folder or data "
            "folder to look in (pass --data-dir DIR or set MI_DECODE_DATA_DIR)"
        )
    raise DataNotFoundError(
        f"{_prefix(where)}data file {path!r} not found (looked in: {', '.join(str(place) for place in places)})"
    )


def load_generic(
    spec: Mapping[str, Any],
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    *,
    base_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """The examples of a data mapping (see the module docstring), in file order, the first ``limit``."""
    return parse_mapping(spec, base_dir=base_dir).read(data_dir, limit)[0]


def _stem(name: str) -> str:
    """``reviews`` for ``reviews.jsonl.gz``."""
    path = PurePosixPath(name)
    while path.suffix and path.suffix.lower() in {*_READERS, ".gz"}:
        path = path.with_suffix("")
    return path.name


def _check_columns(
    source: str | os.PathLike, columns: list[str], fields: Mapping[str, str], id_column: str | None
) -> None:
    for field, column in fields.items():
        if column not in columns:
            raise DataFileError(
                source,
                None,
                f"fields maps {field!r} onto column {column!r}, which the file does not have "
                f"(columns: {describe_columns(columns)})",
            )
    if id_column is not None and id_column not in columns:
        raise DataFileError(
            source,
            None,
            f"id names column {id_column!r}, which the file does not have (columns: {describe_columns(columns)})",
        )


def _ids(
    source: str | os.PathLike,
    rows: list[Mapping[str, Any]],
    id_column: str | None,
    stem: str,
    where: Locator,
) -> list[str]:
    if id_column is None:
        return [f"{stem}-{index}" for index in range(len(rows))]
    ids = []
    for index, row in enumerate(rows):
        try:
            ids.append(row_id(row, id_column))
        except _RowProblem as problem:
            number, unit = where(index)
            raise DataFileError(source, number, str(problem), unit=unit) from None
    unique_ids([{"id": ident} for ident in ids], source)
    return ids


def _example(row: Mapping[str, Any], ident: str, fields: Mapping[str, str]) -> dict:
    mapped = set(fields.values())
    example = {"id": ident}
    example.update((key, value) for key, value in row.items() if key not in mapped and key != "id")
    example.update((field, row[column]) for field, column in fields.items())
    return example


def _hub(repo: str, name: str | None, split: str) -> tuple[Any, str]:
    """A Hub dataset's split, failing within seconds when the Hub is off or out of reach."""
    import datasets

    described = f"{repo!r}" + (f" (config {name!r})" if name else "") + f", split {split!r}"
    source = f"Hub dataset {described}"
    reason = common.hub_unavailable(repo)  # looked up here so that tests can stand in for the Hub
    if reason is None:
        try:
            dataset = datasets.load_dataset(repo, name, split=split)
            common.note_source(f"the Hugging Face Hub dataset {described}")
            return dataset, source
        except Exception as error:  # a wrong config or split, authentication, a failed download
            reason = f"loading it failed: {type(error).__name__}: {_one_line(error)}"
    raise DataNotFoundError(
        f"{source} is not available: {reason}. Where the Hub is reachable, save it to a file "
        f"(datasets.load_dataset({repo!r}, {name!r}, split={split!r}).to_json('FILE.jsonl')) and pass "
        f"data: {{path: FILE.jsonl}}; or check the id, config and split."
    )
