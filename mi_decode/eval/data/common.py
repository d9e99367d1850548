"""Shared parts of the data loaders: where the data folder is, the errors, row and example checks, the base of
the parsed data specs, and the Hugging Face Hub fallback. Which files a set reads, their row counts and Hub
ids are declared by the set's own module (:class:`~mi_decode.eval.data.reading.DataFile`)."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

DATA_DIR_ENV = "MI_DECODE_DATA_DIR"
# `--data-dir hub` (or $MI_DECODE_DATA_DIR=hub): no local folder, the Hub copies (a folder named hub: ./hub).
HUB = "hub"

# Seconds to wait for the Hub's answer to one metadata request before calling it unreachable.
HUB_PROBE_TIMEOUT = 10.0

# Where the data being loaded was read from, while :func:`recording_sources` listens (the report says it).
_SOURCES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "mi_decode_data_sources", default=None
)
BUNDLED_SOURCE = "the quick subsets bundled in the mi_decode package"


@contextlib.contextmanager
def recording_sources() -> Iterator[list[str]]:
    """Collect, in a list, a description of every source the data loaded inside the block was read from:
    a data folder or file (relative to the current directory where it is under it), the bundled quick
    subsets, or a Hub dataset id.

    Example:

    ```python
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from mi_decode.eval.data import load_data
    >>> from mi_decode.eval.data.common import recording_sources
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "qa.jsonl").write_text(json.dumps({"question": "Who?"}) + "\\n")
    >>> with recording_sources() as sources:
    ...     _ = load_data({"path": str(folder / "qa.jsonl")})
    >>> sources  # doctest: +ELLIPSIS
    ['the file .../qa.jsonl']

    ```
    """
    sources: list[str] = []
    token = _SOURCES.set(sources)
    try:
        yield sources
    finally:
        _SOURCES.reset(token)


def note_source(description: str) -> None:
    """Tell :func:`recording_sources` (if one listens) that data is being read from ``description``."""
    sources = _SOURCES.get()
    if sources is not None and description not in sources:
        sources.append(description)


def shown_path(path: str | os.PathLike) -> str:
    """``path`` relative to the current directory where it is under it (as a command line gives it), else
    absolute."""
    resolved = Path(path).expanduser().resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


class DataFileError(ValueError):
    """A data file (or a Hub row) is malformed. ``path`` names the file (or the set), ``line`` the line (or
    row, see ``unit``) at fault, ``None`` when the problem is the file as a whole (a missing tail, a repeated
    id); the message names both, on one line."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str, *, unit: str = "line"):
        self.path = str(path)
        self.line = line
        self.unit = unit
        self.problem = problem
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path if self.line is None else f"{self.path}, {self.unit} {self.line}"
        return f"{where}: {self.problem}"


class DataNotFoundError(FileNotFoundError):
    """The data is not there: the folder or file given does not exist, or no folder was given and the
    Hugging Face Hub cannot provide the set. The message says what to pass."""


class _RowProblem(ValueError):
    """A problem with one row; the reader turns it into a DataFileError with the file and line."""


# ----------------------------------------------------------------------------------------------------------
# The data folder
# ----------------------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data folder to read: ``data_dir``, else ``$MI_DECODE_DATA_DIR``, else the ``evals/data`` of the
    mi_decode checkout (:func:`checkout_data_dir`), else ``None``: the quick subsets bundled with the package
    where they cover the request (:mod:`mi_decode.eval.data.bundled`), then the Hub. ``"hub"`` (argument or
    variable) also gives ``None`` and skips the checkout and the bundled subsets.

    Raises:
        DataNotFoundError: the folder given (by argument or environment variable) is not a directory.

    Example:

    ```python
    >>> import os
    >>> from mi_decode.eval.data import resolve_data_dir
    >>> resolve_data_dir(os.curdir).is_dir()
    True
    >>> resolve_data_dir("hub") is None
    True

    ```
    """
    if data_dir is not None:
        if str(data_dir) == HUB:
            return None
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"data_dir {str(path)!r} is not a directory")
        return path
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    if from_env == HUB:
        return None
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"${DATA_DIR_ENV}={from_env!r} is not a directory")
        return path
    return checkout_data_dir()


def wants_hub(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``hub`` was asked for, by argument or, without one, by ``$MI_DECODE_DATA_DIR``."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV, "").strip()
    return str(chosen) == HUB


def checkout_data_dir() -> Path | None:
    """``evals/data`` of the mi_decode checkout the current directory is in, else of the one the package is
    installed from (editable); ``None`` for an installed wheel run outside a checkout.

    Example:
        >>> from mi_decode.eval.data.common import checkout_data_dir
        >>> folder = checkout_data_dir()
        >>> folder is None or (folder.parent.name, folder.name) == ("evals", "data")
        True
    """
    here = Path.cwd()
    for root in (here, *here.parents, Path(__file__).resolve().parents[3]):
        if (root / "mi_decode" / "__init__.py").is_file() and (
            root / "evals" / "data" / "README.md"
        ).is_file():
            return root / "evals" / "data"
    return None


def how_to_pass(relative: str) -> str:
    return (
        f"Pass --data-dir DIR (Python: data_dir=DIR), set {DATA_DIR_ENV}=DIR, or run from a checkout of "
        f"mi_decode, whose evals/data is read by default; DIR is a folder laid out like that evals/data (see "
        f"its README), containing DIR/{relative}. The quick subsets bundled with the package cover --quick only."
    )


# ----------------------------------------------------------------------------------------------------------
# Row checks
# ----------------------------------------------------------------------------------------------------------


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


def text(row: Mapping[str, Any], key: str) -> str:
    if key not in row:
        raise _RowProblem(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise _RowProblem(f"field {key!r} must be a non-empty string, got {value!r:.80}")
    return value


def texts(row: Mapping[str, Any], key: str) -> list[str]:
    if key not in row:
        raise _RowProblem(f"missing field {key!r}")
    value = row[key]
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise _RowProblem(f"field {key!r} must be a non-empty list of non-empty strings, got {value!r:.80}")
    return list(value)


def integer(row: Mapping[str, Any], key: str) -> int:
    if key not in row:
        raise _RowProblem(f"missing field {key!r}")
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _RowProblem(f"field {key!r} must be an integer, got {value!r:.80}")
    return value


def present(row: Mapping[str, Any], key: str) -> Any:
    if key not in row:
        raise _RowProblem(f"missing field {key!r}")
    if row[key] is None:
        raise _RowProblem(f"field {key!r} is empty (null)")
    return row[key]


def row_id(row: Mapping[str, Any], key: str = "id") -> str:
    if key not in row:
        raise _RowProblem(f"missing field {key!r}")
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise _RowProblem(f"field {key!r} must be an integer or a non-empty string, got {value!r:.80}")
    return str(value)


# Field types a task can require of every example (see ``load_data``).
FIELD_CHECKS: dict[str, Callable[[Mapping[str, Any], str], Any]] = {
    "text": text,
    "texts": texts,
    "int": integer,
    "any": present,
}


def unique_ids(examples: list[dict], source: str | os.PathLike) -> list[dict]:
    """``examples`` unchanged if their ids are unique; else a DataFileError naming both data rows."""
    seen: dict[str, int] = {}
    for row_number, example in enumerate(examples, start=1):
        if example["id"] in seen:
            raise DataFileError(
                source,
                None,
                f"id {example['id']!r} of data row {row_number} repeats data row {seen[example['id']]}",
            )
        seen[example["id"]] = row_number
    return examples


# (example index -> (number, unit)) for naming the line or row of an example that fails a check after loading.
Locator = Callable[[int], tuple[int, str]]


def by_row(index: int) -> tuple[int, str]:
    """The :data:`Locator` of data without lines (a registered set, a Hub table): the 1-based row."""
    return index + 1, "row"


def check_examples(
    examples: Any,
    source: str,
    locate: Locator,
    required: Mapping[str, str],
    hint: str = "",
    columns: Mapping[str, str] | None = None,
) -> None:
    """DataFileError for the first example without a unique string ``id`` or a ``required`` field of its
    type (see :func:`mi_decode.eval.data.load_data`); a field mapped from a column (``columns``: field ->
    column) is named with that column, as the user wrote it, and a missing one gets ``hint``."""
    columns = columns or {}
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


@dataclass(frozen=True)
class DataSpec:
    """A task's ``data`` (and ``data_options``), parsed once when the suite is
    (:func:`mi_decode.eval.data.parse_data_spec`): a registered set with its options
    (:class:`~mi_decode.eval.data.spec.RegisteredData`) or a file or Hub dataset whose columns are mapped
    onto the task's fields (:class:`~mi_decode.eval.data.generic.MappedData`). Loading uses it as it is."""

    # How an example missing a required field is explained (``{field}``: the field); none by default.
    missing_field_hint: ClassVar[str] = ""

    def load(
        self,
        *,
        data_dir: str | os.PathLike | None = None,
        limit: int | None = None,
        required: Mapping[str, str] | None = None,
    ) -> list[dict]:
        """The examples (the first ``limit``), each checked to have a unique string ``id`` and the
        ``required`` fields, ``{field: type}`` (see :func:`mi_decode.eval.data.load_data`)."""
        check_limit(limit)
        examples, source, locate = self.read(data_dir, limit)
        check_examples(examples, source, locate, required or {}, self.missing_field_hint, self.columns())
        return examples

    def read(self, data_dir: str | os.PathLike | None, limit: int | None) -> tuple[list[dict], str, Locator]:
        """The examples without the field checks of :meth:`load`, the name of their source (for errors)
        and the :data:`Locator` of their lines or rows."""
        raise NotImplementedError

    def columns(self) -> dict[str, str]:
        """Field -> the column it is read from, where the suite renamed one (errors name the column)."""
        return {}

    def check_found(self, where: str, data_dir: str | os.PathLike | None = None) -> None:
        """Raise :class:`~mi_decode.eval.registry.SuiteError` (prefixed with ``where``) where the data can be
        told missing cheaply, before any model loads: a local file. Nothing to check by default."""

    def suite_form(self) -> str | dict[str, Any]:
        """``data`` as the suite wrote it: what the suite's fingerprint (and so the run folder) holds."""
        raise NotImplementedError

    def suite_options(self) -> dict[str, Any]:
        """``data_options`` as the suite wrote it (``{}`` without any)."""
        return {}

    def __str__(self) -> str:  # printed as the suite wrote it, as before it was parsed
        return str(self.suite_form())


def interleave_by(examples: list[dict], key: str) -> list[dict]:
    """Each group's first row in file order, then each group's second row, ...: a limit takes distinct
    groups (questions, articles) first, since rows of one group are strongly correlated."""
    groups: dict[str, list[dict]] = {}
    for example in examples:
        groups.setdefault(example[key], []).append(example)
    rounds = max((len(rows) for rows in groups.values()), default=0)
    return [rows[k] for k in range(rounds) for rows in groups.values() if k < len(rows)]


def convert_hub_rows(
    rows: Iterable[dict[str, Any]], converter: Callable[[dict[str, Any], int], dict], source: str
) -> list[dict]:
    """Convert Hub rows, reporting a bad one with its 1-based row number."""
    examples = []
    for index, row in enumerate(rows):
        try:
            examples.append(converter(dict(row), index))
        except _RowProblem as problem:
            raise DataFileError(source, index + 1, str(problem), unit="row") from None
    return examples


# ----------------------------------------------------------------------------------------------------------
# The Hub
# ----------------------------------------------------------------------------------------------------------


def hub_offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(name, "").strip().upper() for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(flag in {"1", "ON", "YES", "TRUE"} for flag in flags)


def hub_unavailable(repo: str) -> str | None:
    """Why the Hub cannot serve dataset ``repo`` (switched off, unreachable, no such dataset), or ``None``.

    One metadata request without retries: ``datasets.load_dataset`` itself retries an unreachable Hub
    for about half a minute before giving up."""
    if hub_offline():
        return "the Hub is switched off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)"
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(repo, timeout=HUB_PROBE_TIMEOUT)
    except HFValidationError as error:
        return f"{repo!r} is not a Hub dataset id ({_one_line(error)})"
    except GatedRepoError:
        return "the dataset is gated: log in (`hf auth login`) and accept its terms on the Hub"
    except RepositoryNotFoundError:
        return "the Hub has no such dataset (or it is private)"
    except Exception as error:  # connection, DNS, timeout, proxy: all mean the Hub is out of reach
        return f"the Hub is unreachable ({type(error).__name__}: {_one_line(error)})"
    return None


def hub_dataset(name: str, hub: tuple[str, str | None, str], relative: str) -> tuple[str, Any]:
    """Load a split from the Hub as a ``datasets.Dataset``, with a description of it; if it is unavailable
    raise DataNotFoundError saying what to pass instead."""
    import datasets

    repo, config, split = hub
    source = f"{repo}" + (f" ({config})" if config else "") + f", split {split!r}"
    reason = hub_unavailable(repo)
    if reason is None:
        try:
            dataset = datasets.load_dataset(repo, config, split=split)
            note_source(f"the Hugging Face Hub dataset {source}")
            return f"Hub dataset {source}", dataset
        except Exception as error:  # network, authentication and format errors all mean: use a local folder
            reason = f"loading it failed: {type(error).__name__}: {_one_line(error)}"
    raise DataNotFoundError(
        f"No data for {name}: no data folder was given and the Hugging Face Hub copy {source} is not "
        f"available ({reason}). {how_to_pass(relative)}"
    )


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " | ".join(lines)[:300] or type(error).__name__
