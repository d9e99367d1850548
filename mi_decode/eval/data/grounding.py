"""Knowledge-conflict data: NQ-Swap (Longpre et al. 2021) and MemoTrap (inverse-scaling prize), with
MemoTrap's instruction split."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .common import (
    MEMOTRAP_COLUMNS,
    MEMOTRAP_FILES,
    MEMOTRAP_HUB,
    MEMOTRAP_TASKS,
    NQSWAP_FILE,
    NQSWAP_HUB,
    _check_count,
    _check_limit,
    _convert,
    _data_file,
    _hub_rows,
    _interleave_by,
    _read_csv,
    _read_jsonl,
    _RowProblem,
    _text,
    _texts,
    resolve_data_dir,
)  # fmt: skip


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
