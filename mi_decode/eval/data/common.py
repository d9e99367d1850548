"""Shared parts of the data loaders: where the data folder is, the errors, row checks, and reading
JSONL/CSV files and Hub splits with the file and line of any bad row."""

from __future__ import annotations

import csv
import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "MI_DECODE_DATA_DIR"

NQSWAP_FILE = "grounding/nqswap/nqswap.jsonl.gz"
MEMOTRAP_FILES = {
    "proverb-ending": "grounding/memotrap/1-proverb-ending.csv",
    "proverb-translation": "grounding/memotrap/2-proverb-translation.csv",
    "hate-speech-ending": "grounding/memotrap/3-hate-speech-ending.csv",
    "history-of-science-qa": "grounding/memotrap/4-history-of-science-qa.csv",
}
MEMOTRAP_TASKS = tuple(MEMOTRAP_FILES)
CNNDM_FILE = "summarization/cnndm_cad_300.jsonl"
OPEN_ENDED_FILES = {
    "wikitext": "open_ended/wikitext_prompts.jsonl",
    "book": "open_ended/book_prompts.jsonl",
}
OPEN_ENDED_SOURCES = tuple(OPEN_ENDED_FILES)

# Row counts of the released files (data README). Truncation at a line boundary leaves every line valid,
# so the count is the only way to tell a cut file from a complete one.
EXPECTED_ROWS = {
    NQSWAP_FILE: 4746,
    MEMOTRAP_FILES["proverb-ending"]: 860,
    MEMOTRAP_FILES["proverb-translation"]: 843,
    MEMOTRAP_FILES["hate-speech-ending"]: 100,
    MEMOTRAP_FILES["history-of-science-qa"]: 736,
    CNNDM_FILE: 300,
    OPEN_ENDED_FILES["wikitext"]: 1314,
    OPEN_ENDED_FILES["book"]: 1947,
}

NQSWAP_HUB = ("pminervini/NQ-Swap", None, "dev")
MEMOTRAP_HUB = ("pminervini/inverse-scaling", "memo-trap", "data")
CNNDM_HUB = ("abisee/cnn_dailymail", "3.0.0", "test")
CNNDM_HUB_ROWS = 300  # as many test articles as CAD's set
MEMOTRAP_COLUMNS = ("prompt", "classes", "answer_index")


class DataFileError(ValueError):
    """A data file (or a Hub row) is malformed. ``path`` names the file, ``line`` the line (or Hub row) at
    fault, ``None`` when the problem is the file as a whole (a missing tail, a repeated id); the message
    names both."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str, *, unit: str = "line"):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{self.path}, {unit} {line}"
        super().__init__(f"{where}: {problem}")


class DataNotFoundError(FileNotFoundError):
    """The data is not there: the folder or file given does not exist, or no folder was given and the
    Hugging Face Hub cannot provide the set. The message says what to pass."""


class _RowProblem(ValueError):
    """A problem with one row; the reader turns it into a DataFileError with the file and line."""


# ----------------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data folder to read: ``data_dir``, else ``$MI_DECODE_DATA_DIR``, else ``None`` (use the Hub).

    Raises:
        DataNotFoundError: the folder given (by argument or environment variable) is not a directory.

    Example:

    ```python
    >>> import os
    >>> from mi_decode.eval_data import resolve_data_dir
    >>> resolve_data_dir(os.curdir).is_dir()
    True

    ```
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"data_dir {str(path)!r} is not a directory")
        return path
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"${DATA_DIR_ENV}={from_env!r} is not a directory")
        return path
    return None


def _interleave_by(examples: list, key: Callable[[Any], str]) -> list:
    """Each group's first row in file order, then each group's second row, ...: a limit takes distinct
    groups (questions, articles) first, since rows of one group are strongly correlated."""
    groups: dict[str, list] = {}
    for example in examples:
        groups.setdefault(key(example), []).append(example)
    rounds = max((len(rows) for rows in groups.values()), default=0)
    return [rows[k] for k in range(rounds) for rows in groups.values() if k < len(rows)]


# ----------------------------------------------------------------------------------------------------------
# Row conversion
# ----------------------------------------------------------------------------------------------------------


def _text(row: dict[str, Any], key: str) -> str:
    if key not in row:
        raise _RowProblem(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise _RowProblem(f"field {key!r} must be a non-empty string, got {value!r:.80}")
    return value


def _texts(row: dict[str, Any], key: str) -> tuple[str, ...]:
    if key not in row:
        raise _RowProblem(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise _RowProblem(f"field {key!r} must be a non-empty list of non-empty strings, got {value!r:.80}")
    return tuple(value)


def _row_id(row: dict[str, Any]) -> str:
    if "id" not in row:
        raise _RowProblem("missing field 'id'")
    value = row["id"]
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise _RowProblem(f"field 'id' must be an integer or a non-empty string, got {value!r}")
    return str(value)


def _convert(
    rows: Iterable[tuple[int, dict[str, Any]]],
    converter: Callable[[dict[str, Any], int], Any],
    source: str | os.PathLike,
    *,
    unit: str = "line",
) -> list[Any]:
    """Convert (line or row number, row) pairs to records, reporting a bad row with its source and number."""
    examples = []
    for index, (line, row) in enumerate(rows):
        try:
            examples.append(converter(row, index))
        except _RowProblem as problem:
            raise DataFileError(source, line, str(problem), unit=unit) from None
    return examples


def _unique_ids(examples: list[Any], path: Path) -> list[Any]:
    seen: dict[str, int] = {}
    for row_number, example in enumerate(examples, start=1):
        if example.id in seen:
            raise DataFileError(
                path, None, f"id {example.id!r} of data row {row_number} repeats data row {seen[example.id]}"
            )
        seen[example.id] = row_number
    return examples


def _check_count(examples: list[Any], folder: Path, relative: str) -> None:
    expected = EXPECTED_ROWS[relative]
    if len(examples) != expected:
        raise DataFileError(
            folder / relative,
            None,
            f"has {len(examples)} rows where the released file has {expected}: it looks truncated or edited",
        )


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


# ----------------------------------------------------------------------------------------------------------
# Reading files and the Hub
# ----------------------------------------------------------------------------------------------------------


def _how_to_pass(relative: str) -> str:
    return (
        f"Pass data_dir=DIR (CLI: --data-dir DIR) or set {DATA_DIR_ENV}=DIR, where DIR is a folder laid out "
        f"like the project's shared/data (see its README), containing DIR/{relative}."
    )


def _data_file(folder: Path, relative: str, name: str) -> Path:
    path = folder / relative
    if not path.is_file():
        raise DataNotFoundError(f"{name} data file not found: {path}. {_how_to_pass(relative)}")
    return path


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a JSONL file, gzipped if it ends in .gz."""
    line_number = 0
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        try:
            for line_number, line in enumerate(handle, start=1):
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


def _read_csv(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (first line of the record, row) for each record of a CSV file with exactly ``columns``."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        start = 1
        try:
            header = next(reader, None)
            if header != list(columns):
                raise DataFileError(path, 1, f"expected the columns {list(columns)}, found {header}")
            start = reader.line_num + 1
            for fields in reader:
                if fields:  # csv yields [] for a blank line
                    if len(fields) != len(columns):
                        raise DataFileError(
                            path,
                            start,
                            f"expected {len(columns)} fields {list(columns)}, found {len(fields)}",
                        )
                    yield start, dict(zip(columns, fields, strict=True))
                start = reader.line_num + 1
        except csv.Error as error:
            raise DataFileError(path, start, f"malformed CSV ({error})") from None
        except UnicodeDecodeError as error:
            raise DataFileError(path, start, f"not valid UTF-8 ({error})") from None


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(name, "").strip().upper() for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(flag in {"1", "ON", "YES", "TRUE"} for flag in flags)


def _hub_rows(
    name: str, hub: tuple[str, str | None, str], relative: str
) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
    """Load a split from the Hub as (row number, row) pairs; if it is unavailable raise DataNotFoundError
    saying what to pass instead."""
    repo, config, split = hub
    source = f"{repo}" + (f" ({config})" if config else "") + f", split {split!r}"
    if _hub_offline():
        reason = "the Hub is switched off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)"
    else:
        try:
            import datasets

            dataset = datasets.load_dataset(repo, config, split=split)
            return f"Hub dataset {source}", (
                (number, dict(row)) for number, row in enumerate(dataset, start=1)
            )
        except Exception as error:  # network, authentication and format errors all mean: use a local folder
            reason = f"loading it failed: {type(error).__name__}: {error}"
    raise DataNotFoundError(
        f"No data for {name}: no data folder was given and the Hugging Face Hub copy {source} is not "
        f"available ({reason}). {_how_to_pass(relative)}"
    )
