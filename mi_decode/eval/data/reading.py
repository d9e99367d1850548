"""Reading local data files through ``datasets.load_dataset`` (builders ``json``, ``csv``, ``parquet`` and
``text``), and naming the line at fault when a file is bad.

``datasets`` reads a file into an Arrow table (cached under ``$HF_DATASETS_CACHE``, so a second load of the
same file is a memory map) but its errors rarely say where: a JSON error names a row inside a block, a
pandas CSV error a record number, a truncated gzip nothing at all. So whenever ``datasets`` fails, or a row
it returned is rejected, the file is scanned once more with the standard library (``json``, ``csv``,
``gzip``) to find the first line at fault. The scan runs only on that error path.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import glob
import gzip
import json
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .common import DataFileError, DataNotFoundError, _one_line, _RowProblem, how_to_pass, unique_ids

Scan = Callable[[Path], Iterator[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True)
class FileFormat:
    """How to read one kind of file: the ``datasets`` builder with its options, and the standard-library
    scan that yields (line, raw row) pairs to name the line of a bad row (``None``: rows have no lines, and
    errors give the 1-based row)."""

    name: str
    builder: str
    options: Mapping[str, Any] = field(default_factory=dict)
    scan: Scan | None = None
    unit: str = "line"
    # CSV read as text: a null is an empty field once the scan has ruled out a short row.
    nulls_are_empty: bool = False


# ----------------------------------------------------------------------------------------------------------
# Formats
# ----------------------------------------------------------------------------------------------------------


def _open_text(path: Path, newline: str | None = None):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return open(path, encoding="utf-8-sig", newline=newline)


def json_format(path: Path) -> FileFormat:
    """JSON lines, or a JSON list of objects when the file starts with ``[`` (datasets reads both)."""
    try:
        with _open_text(path) as handle:
            head = handle.read(4096).lstrip()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error):
        head = ""  # unreadable: the JSON-lines scan names the line
    if head.startswith("["):
        return FileFormat("a JSON list", "json", scan=scan_json_array, unit="row")
    return json_lines_format()


def json_lines_format() -> FileFormat:
    """A JSON-lines file (``.jsonl``, ``.jsonl.gz``): one object per non-blank line."""
    return FileFormat("JSON lines", "json", scan=scan_json_lines)


def csv_format(
    columns: Sequence[str] | None = None,
    *,
    header: bool = True,
    strict: bool = True,
    shape_error: str | None = None,
) -> FileFormat:
    """A CSV file. With ``columns`` every column is read as text (the header must list exactly those, or
    with ``header=False`` they name the columns of a file without a header); without, the header names the
    columns and datasets infers their types. Only an empty field is a null: pandas' default would also read
    the words "NA", "null", "None" ... as missing."""
    import datasets

    options: dict[str, Any] = {"keep_default_na": False, "na_values": [""], "index_col": False}
    if columns is not None:
        options["features"] = datasets.Features({name: datasets.Value("string") for name in columns})
    if not header:
        options.update(header=None, column_names=list(columns or ()))

    def scan(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
        return scan_csv(path, columns=columns, header=header, strict=strict, shape_error=shape_error)

    return FileFormat("CSV", "csv", options, scan, nulls_are_empty=columns is not None)


def text_format() -> FileFormat:
    """A text file, one row ``{"text": line}`` per line (blank lines included, so row i is line i + 1)."""
    return FileFormat("text", "text", scan=scan_text_lines)


def parquet_format() -> FileFormat:
    return FileFormat("Parquet", "parquet", scan=scan_parquet, unit="row")


# ----------------------------------------------------------------------------------------------------------
# Reading through datasets
# ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_datasets():
    """Silence datasets' progress bars and its own logging of the errors raised here (this module reports
    them as one-line DataFileErrors); restore both afterwards."""
    import datasets
    from datasets.utils import logging as datasets_logging

    bars = datasets.is_progress_bar_enabled()
    verbosity = datasets_logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets_logging.set_verbosity(datasets_logging.CRITICAL)
    try:
        yield
    finally:
        datasets_logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()


def read_rows(path: Path, fmt: FileFormat) -> tuple[list[dict[str, Any]], list[str]]:
    """All rows of a local file (every row has every column; a key missing from a JSON line reads as
    ``None``) and the column names, through ``datasets.load_dataset``.

    Raises:
        DataFileError: the file is empty or ``datasets`` cannot read it; names the first bad line when the
            standard-library scan finds one.
    """
    import datasets

    path = Path(path)
    if path.stat().st_size == 0:
        raise DataFileError(path, None, "is empty (0 bytes)")
    try:
        with _quiet_datasets():
            # data_files is a glob pattern: escape the brackets and stars of a real path (pytest's folders).
            dataset = datasets.load_dataset(
                fmt.builder, data_files=glob.escape(str(path)), split="train", **fmt.options
            )
            rows, columns = dataset.to_list(), list(dataset.column_names)
    except DataFileError:
        raise
    except Exception as error:  # any failure of datasets, pyarrow or pandas: scan for the line at fault
        diagnose(path, fmt, error)
    if not rows:
        diagnose(path, fmt, None)
    if fmt.builder == "csv" and any(value is None for row in rows for value in row.values()):
        # pandas reads a short record and an empty field alike (null): the scan raises on a short record.
        for _ in fmt.scan(path):
            pass
        if fmt.nulls_are_empty:
            rows = [{key: "" if value is None else value for key, value in row.items()} for row in rows]
    return rows, columns


def convert_rows(
    path: Path,
    fmt: FileFormat,
    rows: Sequence[Mapping[str, Any]],
    converter: Callable[[Mapping[str, Any], int], Any],
) -> list[Any]:
    """``converter(row, index)`` of each row, dropping ``None`` results (blank lines). A rejected row is
    reported with its line: the raw rows of the standard-library scan go through ``converter`` again, which
    names the first one at fault exactly as the file has it (a key missing from a JSON line rather than a
    null)."""
    examples = []
    for index, row in enumerate(rows):
        try:
            example = converter(row, index)
        except _RowProblem as problem:
            if fmt.scan is not None:
                for raw_index, (number, raw) in enumerate(fmt.scan(path)):
                    try:
                        converter(raw, raw_index)
                    except _RowProblem as raw_problem:
                        raise DataFileError(path, number, str(raw_problem), unit=fmt.unit) from None
            number, unit = locate(path, fmt, index)
            raise DataFileError(path, number, str(problem), unit=unit) from None
        if example is not None:
            examples.append(example)
    return examples


def locate(path: Path, fmt: FileFormat, index: int) -> tuple[int, str]:
    """(line, "line") of the 0-based data row ``index``, or (row, "row") where rows have no lines."""
    if fmt.scan is not None:
        for raw_index, (number, _) in enumerate(fmt.scan(path)):
            if raw_index == index:
                return number, fmt.unit
    return index + 1, "row"


# ----------------------------------------------------------------------------------------------------------
# The released files of the registered sets
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFile:
    """A released file of a registered set, declared by the module that loads it: where it lies in the data
    folder, how many rows the released file has (the data README's count), how messages name it and its
    format (a factory: building a CSV format imports ``datasets``).

    A file cut at a line boundary is valid line by line, so the row count is the only way to tell it from
    the whole file: :meth:`read` checks it.

    Example:

    ```python
    >>> import tempfile
    >>> from pathlib import Path
    >>> from mi_decode.eval.data.reading import DataFile
    >>> folder = Path(tempfile.mkdtemp())
    >>> toy = DataFile("toy/toy.jsonl", rows=2, title="Toy")
    >>> (folder / "toy").mkdir()
    >>> _ = (folder / toy.relative).write_text('{"q": "a"}\\n{"q": "b"}\\n')
    >>> toy.read(folder, lambda row, index: {"id": f"toy-{index}", "q": row["q"]})
    [{'id': 'toy-0', 'q': 'a'}, {'id': 'toy-1', 'q': 'b'}]
    >>> DataFile("toy/toy.jsonl", rows=3, title="Toy").read(folder, lambda row, index: {"id": str(index)})
    Traceback (most recent call last):
    ...
    mi_decode.eval.data.common.DataFileError: .../toy/toy.jsonl: has 2 rows where the released file has 3: ...

    ```
    """

    relative: str  # under the data folder, as the data README lists it
    rows: int
    title: str  # "NQ-Swap", "MemoTrap proverb-ending"
    format: Callable[[], FileFormat] = json_lines_format

    def read(self, folder: Path, converter: Callable[[Mapping[str, Any], int], dict]) -> list[dict]:
        """``converter(row, index)`` of every row of the file in ``folder``, checked for unique ids and for
        the released row count.

        Raises:
            DataNotFoundError: the file is not in ``folder`` (the message says how to give it).
            DataFileError: a bad row, a repeated id, or a row count other than :attr:`rows`.
        """
        path = Path(folder) / self.relative
        if not path.is_file():
            raise DataNotFoundError(f"{self.title} data file not found: {path}. {how_to_pass(self.relative)}")
        fmt = self.format()
        examples = unique_ids(convert_rows(path, fmt, read_rows(path, fmt)[0], converter), path)
        if len(examples) != self.rows:
            raise DataFileError(
                path,
                None,
                f"has {len(examples)} rows where the released file has {self.rows}: it looks truncated or edited",
            )
        return examples


def diagnose(path: Path, fmt: FileFormat, error: BaseException | None) -> NoReturn:
    """Raise the DataFileError for a file that ``datasets`` could not read (``error``) or found empty
    (``None``): the first bad line of the scan if there is one, else the file as a whole."""
    count = 0
    if fmt.scan is not None:
        rows = fmt.scan(path)
        if fmt.builder == "json":
            rows = _check_json_types(path, rows, fmt.unit)
        for _ in rows:
            count += 1
    if error is None or (fmt.scan is not None and count == 0):
        raise DataFileError(path, None, "has no data rows")
    raise DataFileError(
        path, None, f"could not be read as {fmt.name} ({type(error).__name__}: {_one_line(error)})"
    ) from None


# ----------------------------------------------------------------------------------------------------------
# Standard-library scans (error path only)
# ----------------------------------------------------------------------------------------------------------


def scan_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a JSON-lines file, gzipped if it ends in .gz."""
    line_number = 0
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        try:
            for line_number, line in enumerate(handle, start=1):
                if line_number == 1 and line.startswith(codecs.BOM_UTF8):
                    line = line[len(codecs.BOM_UTF8) :]
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    raise DataFileError(path, line_number, f"invalid JSON ({error})") from None
                if not isinstance(row, dict):
                    raise DataFileError(
                        path, line_number, f"expected a JSON object, got {type(row).__name__}"
                    )
                yield line_number, row
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise DataFileError(
                path,
                line_number + 1,
                f"truncated or corrupt gzip data after {line_number} complete lines ({error})",
            ) from None


def scan_json_array(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based element, object) for a file holding one JSON list of objects."""
    try:
        with _open_text(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataFileError(path, error.lineno, f"invalid JSON ({error})") from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataFileError(path, None, f"unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(data, list):
        raise DataFileError(path, None, f"expected JSON lines or a JSON list, got a {type(data).__name__}")
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            raise DataFileError(path, number, f"expected a JSON object, got {type(row).__name__}", unit="row")
        yield number, row


def scan_csv(
    path: Path,
    *,
    columns: Sequence[str] | None = None,
    header: bool = True,
    strict: bool = True,
    shape_error: str | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (first line of the record, row) for each record of a CSV file (see :func:`csv_format`)."""
    with _open_text(path, newline="") as handle:
        reader = csv.reader(handle, strict=strict)
        start = 1
        try:
            names = list(columns or ())
            if header:
                found = next(reader, None)
                if found is None:
                    raise DataFileError(path, None, "is empty: no header line")
                if columns is not None and found != names:
                    raise DataFileError(path, 1, f"expected the columns {names}, found {found}")
                names = found
                start = reader.line_num + 1
            for fields in reader:
                if fields:  # csv yields [] for a blank line
                    if len(fields) != len(names):
                        problem = shape_error or f"expected {len(names)} fields {names}, found {len(fields)}"
                        raise DataFileError(path, start, f"{problem}, got {fields!r:.120}")
                    yield start, dict(zip(names, fields, strict=True))
                start = reader.line_num + 1
        except csv.Error as error:
            raise DataFileError(path, start, f"malformed CSV ({error})") from None
        except UnicodeDecodeError as error:
            raise DataFileError(path, start, f"not valid UTF-8 ({error})") from None
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise DataFileError(path, start, f"truncated or corrupt gzip data ({error})") from None


def scan_text_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, {"text": line}) for every line, as the ``text`` builder reads them."""
    line_number = 0
    with open(path, encoding="utf-8") as handle:
        try:
            for line_number, line in enumerate(handle, start=1):
                yield line_number, {"text": line.rstrip("\n")}
        except UnicodeDecodeError as error:
            raise DataFileError(path, line_number + 1, f"not valid UTF-8 ({error})") from None


def scan_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based row, row) of a Parquet file read with pyarrow itself (rows have no lines)."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ... for a file that is not Parquet
        raise DataFileError(path, None, f"not a readable Parquet file ({_one_line(error)})") from None
    yield from enumerate(rows, start=1)


def _json_kinds(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    """(field path, JSON type) of a value and of everything nested in it; nulls fit any type."""
    if value is None:
        return
    if isinstance(value, bool):
        yield prefix, "boolean"
    elif isinstance(value, int | float):
        yield prefix, "number"
    elif isinstance(value, str):
        yield prefix, "string"
    elif isinstance(value, list):
        yield prefix, "list"
        for item in value:
            yield from _json_kinds(f"{prefix}[]", item)
    else:
        yield prefix, "object"
        for key, item in value.items():
            yield from _json_kinds(f"{prefix}.{key}", item)


def _check_json_types(
    path: Path, rows: Iterator[tuple[int, dict[str, Any]]], unit: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Pass rows through, raising at the first whose field has another JSON type than on an earlier row:
    Arrow needs one type per column, and its own error names a row inside a block."""
    first: dict[str, tuple[str, int]] = {}
    for number, row in rows:
        for key, value in row.items():
            for name, kind in _json_kinds(key, value):
                seen = first.setdefault(name, (kind, number))
                if seen[0] != kind:
                    raise DataFileError(
                        path,
                        number,
                        f"field {name!r} is a {kind} here but a {seen[0]} on {unit} {seen[1]}",
                        unit=unit,
                    )
        yield number, row


def describe_columns(columns: Sequence[str]) -> str:
    return ", ".join(columns) if columns else "none"


__all__ = [
    "FileFormat",
    "convert_rows",
    "csv_format",
    "diagnose",
    "json_format",
    "json_lines_format",
    "locate",
    "parquet_format",
    "read_rows",
    "scan_csv",
    "scan_json_array",
    "scan_json_lines",
    "scan_parquet",
    "scan_text_lines",
    "text_format",
]
