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

from __future__ import annotations

import ast
import csv
import gzip
import itertools
import json
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class NQSwapExample:
    """One NQ-Swap question (Longpre et al. 2021) whose passage had its answer entity substituted.

    ``id`` is ``"nqswap-<row>"`` (0-based row of the file). The source fields map as ``org_context`` ->
    ``original_context``, ``org_answer`` -> ``original_answers``, ``sub_context`` -> ``substituted_context``,
    ``sub_answer`` -> ``substituted_answers``; answers are lists of gold aliases.
    """

    id: str
    question: str
    original_context: str
    original_answers: tuple[str, ...]
    substituted_context: str
    substituted_answers: tuple[str, ...]


class MemoTrapSplit(NamedTuple):
    """A MemoTrap prompt split for contrastive decoding: conditioned = the full prompt, unconditioned =
    ``rest``, the prompt with ``instruction`` removed (``rest == prompt.replace(instruction, "", 1)``)."""

    instruction: str
    rest: str


@dataclass(frozen=True)
class MemoTrapExample:
    """One MemoTrap item: a prompt whose instruction conflicts with a memorised continuation.

    ``id`` is ``"<task>-<row>"`` (0-based data row of the task's file). ``candidates`` are the two
    continuations (the CSV's ``classes``) and ``answer_index`` the one that follows the instruction.
    Score the candidates conditioned on ``prompt`` and unconditioned on ``rest`` (see
    :func:`split_memotrap_prompt`).
    """

    id: str
    task: str
    prompt: str
    instruction: str
    rest: str
    candidates: tuple[str, ...]
    answer_index: int

    @property
    def answer(self) -> str:
        """The candidate that follows the instruction."""
        return self.candidates[self.answer_index]


@dataclass(frozen=True)
class SummarizationExample:
    """One CNN/DailyMail article with its reference summary. ``id`` is ``"cnndm-<id>"``."""

    id: str
    article: str
    reference: str


@dataclass(frozen=True)
class OpenEndedExample:
    """A text prefix with its human continuation. ``id`` is ``"<source>-<id>"``, ``source`` is
    ``"wikitext"`` or ``"book"``."""

    id: str
    source: str
    prefix: str
    reference: str


# ----------------------------------------------------------------------------------------------------------
# MemoTrap: splitting the instruction off
# ----------------------------------------------------------------------------------------------------------

_OPTIONS = r"\nA\. [^\n]+\nB\. [^\n]+\nAnswer:"
_SCIENCE_QUESTION = (
    r"What was a scientific (?:theory|claim|model) that was (?:challenged|refuted|disproven|falsified)"
    r" in the following event"
)
_LEADING_QUESTION = (
    r"(?:What was the common (?:wisdom|belief) (?:before|prior to) the following event"
    rf"|{_SCIENCE_QUESTION}): "
)
_TRAILING_QUESTION = (
    r" (?:(?:Before|Prior to) the aforementioned event, what was the common (?:wisdom|belief)\?"
    rf"|{_SCIENCE_QUESTION}\?)"
)

# Each pattern fullmatches a whole prompt; its ``instruction`` group is the span removed for the
# unconditioned branch. Order matters for detection: the hate-speech pattern also matches proverb endings.
_MEMOTRAP_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    "proverb-ending": (
        re.compile(r'(?P<instruction>Write a quote that ends in the word "[^"\n]+": )[^\n]+'),
    ),
    "proverb-translation": (
        re.compile(
            r"(?P<instruction>Translate the following sentence from \w+ into English\.\n[^\n]+\nto:\n)[^\n]+"
        ),
    ),
    "history-of-science-qa": (
        re.compile(rf"(?P<instruction>{_LEADING_QUESTION})[^\n]+{_OPTIONS}"),
        re.compile(rf"[^\n]+?(?P<instruction>{_TRAILING_QUESTION}){_OPTIONS}"),
    ),
    "hate-speech-ending": (re.compile(r"(?P<instruction>Write an? [^:\n]+: )[^\n]+"),),
}


def split_memotrap_prompt(prompt: str, task: str | None = None) -> MemoTrapSplit:
    """Split a MemoTrap prompt into its instruction and the rest (the unconditioned prompt).

    CAD (Shi et al. 2023) treats MemoTrap's instruction as the context: the conditioned branch reads the
    full prompt, the unconditioned branch the prompt with the instruction removed, where the memorised
    continuation dominates. The four files' formats and their splits (checked on every row of each file):

    - ``proverb-ending`` (1-proverb-ending.csv, 860 rows): ``Write a quote that ends in the word "W": P``.
      The instruction is ``Write a quote that ends in the word "W": `` (up to and including ``": ``); the rest
      is the proverb prefix ``P`` (which may itself contain colons, e.g. ``Bore: a person who...``).
    - ``proverb-translation`` (2-proverb-translation.csv, 843 rows): four lines,
      ``Translate the following sentence from L into English.\\nS\\nto:\\nP``. The instruction is the first
      three lines with their newlines (the task and the foreign sentence ``S``, which carries the altered
      ending); the rest is the English prefix ``P`` on the last line.
    - ``hate-speech-ending`` (3-hate-speech-ending.csv, 100 rows): ``Write a <sign|law|verse|quote> ...: P``.
      The instruction is everything up to and including the first colon and the space after it; the rest is
      ``P``, which may contain colons (``...men and women agree: they both distrust``).
    - ``history-of-science-qa`` (4-history-of-science-qa.csv, 736 rows):
      ``<first line>\\nA. ...\\nB. ...\\nAnswer:`` where the first line is either ``Q: E``, a leading
      question ``Q`` then the event ``E`` (368 rows), or ``E Q?``, the event then a trailing question (368
      rows). Leading questions: "What was the common wisdom/belief before/prior to the following event" and
      "What was a scientific theory/claim/model that was challenged/refuted/disproven/falsified in the
      following event"; trailing ones: "Before/Prior to the aforementioned event, what was the common
      wisdom/belief?" and the scientific one with a question mark. The instruction is the question: ``Q: ``
      when leading (the rest is ``E`` and the options); `` Q?`` with its leading space when trailing (the
      rest is ``E`` then the options: the instruction sits mid-prompt, so ``prompt != instruction + rest``).

    In every case ``rest == prompt.replace(instruction, "", 1)`` and both are non-empty.

    Args:
        prompt: A MemoTrap prompt.
        task: One of :data:`MEMOTRAP_TASKS`; ``None`` detects it from the prompt
            (:func:`detect_memotrap_task`).

    Raises:
        ValueError: ``task`` is unknown, or the prompt does not have that task's format.

    Example:

    ```python
    >>> from mi_decode.eval_data import split_memotrap_prompt
    >>> prompt = 'Write a quote that ends in the word "heavy": Absence makes the heart grow'
    >>> split = split_memotrap_prompt(prompt)
    >>> split.instruction, split.rest
    ('Write a quote that ends in the word "heavy": ', 'Absence makes the heart grow')
    >>> split_memotrap_prompt("E was observed. Before the aforementioned event, what was the common belief?"
    ...                       "\\nA. x\\nB. y\\nAnswer:").rest
    'E was observed.\\nA. x\\nB. y\\nAnswer:'

    ```
    """
    if task is None:
        task = detect_memotrap_task(prompt)
    elif task not in _MEMOTRAP_PATTERNS:
        raise ValueError(f"unknown MemoTrap task {task!r}; expected one of {MEMOTRAP_TASKS}")
    for pattern in _MEMOTRAP_PATTERNS[task]:
        match = pattern.fullmatch(prompt)
        if match:
            start, end = match.span("instruction")
            return MemoTrapSplit(instruction=prompt[start:end], rest=prompt[:start] + prompt[end:])
    raise ValueError(
        f"prompt does not have the MemoTrap {task!r} format (see split_memotrap_prompt): {prompt!r}"
    )


def detect_memotrap_task(prompt: str) -> str:
    """The MemoTrap task whose prompt format ``prompt`` has (see :func:`split_memotrap_prompt`).

    Raises:
        ValueError: the prompt has none of the four formats.

    Example:

    ```python
    >>> from mi_decode.eval_data import detect_memotrap_task
    >>> detect_memotrap_task("Translate the following sentence from French into English.\\nLe chat\\nto:\\nA")
    'proverb-translation'

    ```
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    for task, patterns in _MEMOTRAP_PATTERNS.items():
        if any(pattern.fullmatch(prompt) for pattern in patterns):
            return task
    raise ValueError(f"prompt has none of the MemoTrap formats (see split_memotrap_prompt): {prompt!r}")


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


def load_nqswap(
    data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[NQSwapExample]:
    """Load NQ-Swap (4,746 rows over 1,667 questions) from ``grounding/nqswap/nqswap.jsonl.gz``, or from the
    Hub as ``pminervini/NQ-Swap`` (split ``dev``) when no data folder is given.

    A question has up to several rows (one per substituted entity), mostly next to each other in the file,
    and they are strongly correlated: the first 64 rows hold only 22 questions. The rows are therefore
    returned interleaved by question (every question's first row in file order, then every second row,
    ...), so ``limit`` takes distinct questions first; ``id`` keeps the file row.

    Args:
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``, else the Hub.
        limit: Keep the first ``limit`` rows of that order.

    Example:

    ```python
    >>> from mi_decode.eval_data import load_nqswap
    >>> example = load_nqswap(limit=1)[0]  # doctest: +SKIP
    >>> example.id, example.substituted_answers  # doctest: +SKIP
    ('nqswap-0', ('775',))

    ```
    """
    _check_limit(limit)
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        path = _data_file(folder, NQSWAP_FILE, "NQ-Swap")
        examples = _convert(_read_jsonl(path), _nqswap_example, path)
        _check_count(examples, folder, NQSWAP_FILE)
    else:
        source, rows = _hub_rows("NQ-Swap", NQSWAP_HUB, NQSWAP_FILE)
        examples = _convert(rows, _nqswap_example, source, unit="row")
    return _interleave_by(examples, lambda example: example.question)[:limit]


def _interleave_by(examples: list, key: Callable[[Any], str]) -> list:
    """Each group's first row in file order, then each group's second row, ...: a limit takes distinct
    groups (questions, articles) first, since rows of one group are strongly correlated."""
    groups: dict[str, list] = {}
    for example in examples:
        groups.setdefault(key(example), []).append(example)
    rounds = max((len(rows) for rows in groups.values()), default=0)
    return [rows[k] for k in range(rounds) for rows in groups.values() if k < len(rows)]


def load_memotrap(
    data_dir: str | os.PathLike | None = None,
    *,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[MemoTrapExample]:
    """Load MemoTrap from ``grounding/memotrap/*.csv`` (columns ``prompt, classes, answer_index``; ``classes``
    is a Python-literal list read with ``ast.literal_eval``), or from the Hub as
    ``pminervini/inverse-scaling``/``memo-trap`` when no data folder is given. Each prompt is split into
    instruction and rest (:func:`split_memotrap_prompt`); a row that does not split raises.

    Args:
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``, else the Hub.
        tasks: Which of :data:`MEMOTRAP_TASKS` to load, in that order (default: all four).
        limit: Keep the first ``limit`` rows of each task.

    Example:

    ```python
    >>> from mi_decode.eval_data import load_memotrap
    >>> example = load_memotrap(tasks=["proverb-ending"], limit=1)[0]  # doctest: +SKIP
    >>> example.rest, example.answer  # doctest: +SKIP
    ('Absence makes the heart grow', ' heavy.')

    ```
    """
    _check_limit(limit)
    if tasks is None:
        tasks = MEMOTRAP_TASKS
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty list of MemoTrap tasks {MEMOTRAP_TASKS}, got {tasks!r}")
    unknown = [task for task in tasks if task not in MEMOTRAP_FILES]
    if unknown:
        raise ValueError(f"unknown MemoTrap tasks {unknown}; expected some of {MEMOTRAP_TASKS}")
    folder = resolve_data_dir(data_dir)
    examples = []
    if folder is not None:
        for task in tasks:
            path = _data_file(folder, MEMOTRAP_FILES[task], f"MemoTrap {task}")
            task_examples = _convert(_read_csv(path, MEMOTRAP_COLUMNS), _memotrap_example(task), path)
            _check_count(task_examples, folder, MEMOTRAP_FILES[task])
            examples += task_examples[:limit]
    else:
        source, rows = _hub_rows("MemoTrap", MEMOTRAP_HUB, "grounding/memotrap/*.csv")
        all_examples = _convert(rows, _memotrap_example(None), source, unit="row")
        for task in tasks:
            examples += [example for example in all_examples if example.task == task][:limit]
    return examples


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


def load_open_ended(
    source: str, data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[OpenEndedExample]:
    """Load the open-ended prefixes with human continuations from ``open_ended/<source>_prompts.jsonl``
    (fields ``id, prefix, reference``): WikiText-103 (1,314 rows) or book/story text (1,947 rows), from the
    Contrastive Decoding evaluation. These have no Hub copy: without a data folder this raises.

    Args:
        source: ``"wikitext"`` or ``"book"``.
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``.
        limit: Keep the first ``limit`` rows.

    Example:

    ```python
    >>> from mi_decode.eval_data import load_open_ended
    >>> load_open_ended("wikitext", limit=1)[0].id  # doctest: +SKIP
    'wikitext-0'

    ```
    """
    if source not in OPEN_ENDED_FILES:
        raise ValueError(f"unknown open-ended source {source!r}; expected one of {OPEN_ENDED_SOURCES}")
    _check_limit(limit)
    relative = OPEN_ENDED_FILES[source]
    folder = resolve_data_dir(data_dir)
    if folder is None:
        raise DataNotFoundError(
            f"No data for the open-ended {source} prompts: no data folder was given, and this set (prefixes "
            f"and human continuations from the Contrastive Decoding evaluation) has no copy on the Hugging "
            f"Face Hub. {_how_to_pass(relative)}"
        )
    path = _data_file(folder, relative, f"open-ended {source}")
    examples = _unique_ids(_convert(_read_jsonl(path), _open_ended_example(source), path), path)
    _check_count(examples, folder, relative)
    return examples[:limit]


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


def _nqswap_example(row: dict[str, Any], index: int) -> NQSwapExample:
    return NQSwapExample(
        id=f"nqswap-{index}",
        question=_text(row, "question"),
        original_context=_text(row, "org_context"),
        original_answers=_texts(row, "org_answer"),
        substituted_context=_text(row, "sub_context"),
        substituted_answers=_texts(row, "sub_answer"),
    )


def _memotrap_example(task: str | None) -> Callable[[dict[str, Any], int], MemoTrapExample]:
    """Row converter for a task's file; ``task=None`` (Hub table) detects each row's task from its prompt."""
    counters = dict.fromkeys(MEMOTRAP_TASKS, 0)

    def convert(row: dict[str, Any], index: int) -> MemoTrapExample:
        prompt = _text(row, "prompt")
        candidates = row.get("classes")
        if isinstance(candidates, str):
            try:
                # literal_eval parses literals only: the file's text is never executed.
                candidates = ast.literal_eval(candidates)
            except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
                raise _RowProblem(f"field 'classes' is not a Python literal list ({error})") from None
        if not isinstance(candidates, list | tuple) or len(candidates) < 2:
            raise _RowProblem(
                f"field 'classes' must be a list of at least 2 candidates, got {candidates!r:.80}"
            )
        if not all(isinstance(candidate, str) and candidate.strip() for candidate in candidates):
            raise _RowProblem(f"field 'classes' must hold non-empty strings, got {candidates!r:.80}")
        answer_index = row.get("answer_index")
        if isinstance(answer_index, str) and re.fullmatch(r"\s*\d+\s*", answer_index):
            answer_index = int(answer_index)
        if isinstance(answer_index, bool) or not isinstance(answer_index, int):
            raise _RowProblem(f"field 'answer_index' must be an integer, got {answer_index!r}")
        if not 0 <= answer_index < len(candidates):
            raise _RowProblem(f"answer_index {answer_index} is out of range for {len(candidates)} candidates")
        try:
            row_task = detect_memotrap_task(prompt) if task is None else task
            split = split_memotrap_prompt(prompt, row_task)
        except ValueError as error:
            raise _RowProblem(str(error)) from None
        row_index = index if task is not None else counters[row_task]
        counters[row_task] += 1
        return MemoTrapExample(
            id=f"{row_task}-{row_index}",
            task=row_task,
            prompt=prompt,
            instruction=split.instruction,
            rest=split.rest,
            candidates=tuple(candidates),
            answer_index=answer_index,
        )

    return convert


def _cnndm_example(row: dict[str, Any], index: int) -> SummarizationExample:
    return SummarizationExample(
        id=f"cnndm-{_row_id(row)}", article=_text(row, "article"), reference=_text(row, "reference")
    )


def _open_ended_example(source: str) -> Callable[[dict[str, Any], int], OpenEndedExample]:
    def convert(row: dict[str, Any], index: int) -> OpenEndedExample:
        return OpenEndedExample(
            id=f"{source}-{_row_id(row)}",
            source=source,
            prefix=_text(row, "prefix"),
            reference=_text(row, "reference"),
        )

    return convert


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
