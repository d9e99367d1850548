"""Knowledge-conflict data: NQ-Swap (Longpre et al. 2021) and MemoTrap (inverse-scaling prize), with
MemoTrap's instruction split.

Registered data sets (:func:`mi_decode.eval.registry.register_data`):

- ``nqswap``: ``grounding/nqswap/nqswap.jsonl.gz``, JSON lines ``question, org_context, org_answer (list),
  sub_context, sub_answer (list)``, 4,746 rows over 1,667 questions; Hub copy ``pminervini/NQ-Swap``
  (split ``dev``). Examples: ``id`` (``"nqswap-<file row>"``), ``question, original_context,
  original_answers, substituted_context, substituted_answers``.
- ``memotrap``: ``grounding/memotrap/{1-proverb-ending,2-proverb-translation,3-hate-speech-ending,
  4-history-of-science-qa}.csv``, CSV ``prompt, classes, answer_index`` (``classes`` a Python-literal list
  of two continuations, parsed with ``ast.literal_eval``, never evaluated), 860 / 843 / 100 / 736 rows;
  Hub copy ``pminervini/inverse-scaling`` (config ``memo-trap``, split ``data``), one table whose rows are
  assigned to the four tasks by prompt format. Option ``tasks``. Examples: ``id`` (``"<task>-<row>"``),
  ``task, prompt, instruction, rest, candidates, answer_index``.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

from ..registry import register_data
from .common import (
    _RowProblem,
    check_limit,
    convert_hub_rows,
    hub_dataset,
    interleave_by,
    resolve_data_dir,
    text,
    texts,
)  # fmt: skip
from .reading import DataFile, csv_format

NQSWAP_FILE = DataFile("grounding/nqswap/nqswap.jsonl.gz", rows=4746, title="NQ-Swap")
NQSWAP_HUB = ("pminervini/NQ-Swap", None, "dev")  # (repo, config, split): the same 4,746 rows
MEMOTRAP_COLUMNS = ("prompt", "classes", "answer_index")
_MEMOTRAP_CSV = partial(csv_format, MEMOTRAP_COLUMNS)
MEMOTRAP_FILES = {
    "proverb-ending": DataFile(
        "grounding/memotrap/1-proverb-ending.csv", 860, "MemoTrap proverb-ending", _MEMOTRAP_CSV
    ),
    "proverb-translation": DataFile(
        "grounding/memotrap/2-proverb-translation.csv", 843, "MemoTrap proverb-translation", _MEMOTRAP_CSV
    ),
    "hate-speech-ending": DataFile(
        "grounding/memotrap/3-hate-speech-ending.csv", 100, "MemoTrap hate-speech-ending", _MEMOTRAP_CSV
    ),
    "history-of-science-qa": DataFile(
        "grounding/memotrap/4-history-of-science-qa.csv", 736, "MemoTrap history-of-science-qa", _MEMOTRAP_CSV
    ),
}
MEMOTRAP_TASKS = tuple(MEMOTRAP_FILES)
MEMOTRAP_HUB = ("pminervini/inverse-scaling", "memo-trap", "data")  # one table for the four files


class MemoTrapSplit(NamedTuple):
    """A MemoTrap prompt split for contrastive decoding: conditioned = the full prompt, unconditioned =
    ``rest``, the prompt with ``instruction`` removed (``rest == prompt.replace(instruction, "", 1)``)."""

    instruction: str
    rest: str


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
    >>> from mi_decode.eval.data import split_memotrap_prompt
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
    >>> from mi_decode.eval.data import detect_memotrap_task
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


# Questions (positions in the interleaved order, which starts with one row per question) of the held-out
# split: the first 200 are reported, the next 100 tune methods; tuning never sees the reported questions.
NQSWAP_SPLITS = {"test": (0, 200), "dev": (200, 300)}


@register_data("nqswap")
def load_nqswap(
    data_dir: str | os.PathLike | None = None, limit: int | None = None, split: str | None = None
) -> list[dict]:
    """Load NQ-Swap (4,746 rows over 1,667 questions) from ``grounding/nqswap/nqswap.jsonl.gz``, or from the
    Hub as ``pminervini/NQ-Swap`` (split ``dev``) when no data folder is given.

    A question has up to several rows (one per substituted entity), mostly next to each other in the file,
    and they are strongly correlated: the first 64 rows hold only 22 questions. The rows are therefore
    returned interleaved by question (every question's first row in file order, then every second row,
    ...), so ``limit`` takes distinct questions first; ``id`` keeps the file row.

    Each example is a dict: ``id`` (``"nqswap-<row>"``, the 0-based row of the file), ``question``,
    ``original_context``, ``original_answers``, ``substituted_context``, ``substituted_answers``. The source
    fields map as ``org_context`` -> ``original_context``, ``org_answer`` -> ``original_answers``,
    ``sub_context`` -> ``substituted_context``, ``sub_answer`` -> ``substituted_answers``; answers are lists
    of gold aliases.

    Args:
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``, else the Hub.
        limit: Keep the first ``limit`` rows of that order (the whole file is checked all the same).
        split: ``"test"`` (the first 200 distinct questions, what reports give), ``"dev"`` (the next 100,
            for tuning a method's settings), or ``None`` (every row).

    Example:

    ```python
    >>> from mi_decode.eval.data import load_nqswap
    >>> example = load_nqswap(limit=1)[0]  # doctest: +SKIP
    >>> example["id"], example["substituted_answers"]  # doctest: +SKIP
    ('nqswap-0', ['775'])

    ```
    """
    check_limit(limit)
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        examples = NQSWAP_FILE.read(folder, _nqswap_example)
    else:
        source, dataset = hub_dataset("NQ-Swap", NQSWAP_HUB, NQSWAP_FILE.relative)
        examples = convert_hub_rows(dataset, _nqswap_example, source)
    examples = interleave_by(examples, "question")
    if split is not None:
        if split not in NQSWAP_SPLITS:
            raise ValueError(f"NQ-Swap split must be one of {', '.join(NQSWAP_SPLITS)}, got {split!r}")
        start, stop = NQSWAP_SPLITS[split]
        examples = examples[start:stop]
    return examples[:limit]


@register_data("memotrap")
def load_memotrap(
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    *,
    tasks: Sequence[str] | None = None,
) -> list[dict]:
    """Load MemoTrap from ``grounding/memotrap/*.csv`` (columns ``prompt, classes, answer_index``; ``classes``
    is a Python-literal list read with ``ast.literal_eval``), or from the Hub as
    ``pminervini/inverse-scaling``/``memo-trap`` when no data folder is given. Each prompt is split into
    instruction and rest (:func:`split_memotrap_prompt`); a row that does not split raises.

    Each example is a dict: ``id`` (``"<task>-<row>"``, the 0-based data row of the task's file), ``task``,
    ``prompt``, ``instruction``, ``rest``, ``candidates`` (the two continuations, the CSV's ``classes``) and
    ``answer_index`` (the candidate that follows the instruction). Score the candidates conditioned on
    ``prompt`` and unconditioned on ``rest``.

    Args:
        data_dir: The data folder; ``None`` uses ``$MI_DECODE_DATA_DIR``, else the Hub.
        limit: Keep the first ``limit`` rows of each task.
        tasks: Which of :data:`MEMOTRAP_TASKS` to load, in that order (default: all four).

    Example:

    ```python
    >>> from mi_decode.eval.data import load_memotrap
    >>> example = load_memotrap(tasks=["proverb-ending"], limit=1)[0]  # doctest: +SKIP
    >>> example["rest"], example["candidates"][example["answer_index"]]  # doctest: +SKIP
    ('Absence makes the heart grow', ' heavy.')

    ```
    """
    check_limit(limit)
    if tasks is None:
        tasks = MEMOTRAP_TASKS
    if isinstance(tasks, str) or not isinstance(tasks, Sequence) or not tasks:
        raise ValueError(f"tasks must be a non-empty list of MemoTrap tasks {MEMOTRAP_TASKS}, got {tasks!r}")
    unknown = [task for task in tasks if task not in MEMOTRAP_FILES]
    if unknown:
        raise ValueError(f"unknown MemoTrap tasks {unknown}; expected some of {MEMOTRAP_TASKS}")
    folder = resolve_data_dir(data_dir)
    examples: list[dict] = []
    if folder is not None:
        for task in tasks:
            examples += MEMOTRAP_FILES[task].read(folder, _memotrap_example(task))[:limit]
    else:
        source, dataset = hub_dataset("MemoTrap", MEMOTRAP_HUB, "grounding/memotrap/*.csv")
        all_examples = convert_hub_rows(dataset, _memotrap_example(None), source)
        for task in tasks:
            examples += [example for example in all_examples if example["task"] == task][:limit]
    return examples


def _nqswap_example(row: Mapping[str, Any], index: int) -> dict:
    return {
        "id": f"nqswap-{index}",
        "question": text(row, "question"),
        "original_context": text(row, "org_context"),
        "original_answers": texts(row, "org_answer"),
        "substituted_context": text(row, "sub_context"),
        "substituted_answers": texts(row, "sub_answer"),
    }


def _memotrap_example(task: str | None) -> Callable[[Mapping[str, Any], int], dict]:
    """Row converter for a task's file; ``task=None`` (Hub table) detects each row's task from its prompt."""
    counters = dict.fromkeys(MEMOTRAP_TASKS, 0)

    def convert(row: Mapping[str, Any], index: int) -> dict:
        prompt = text(row, "prompt")
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
        return {
            "id": f"{row_task}-{row_index}",
            "task": row_task,
            "prompt": prompt,
            "instruction": split.instruction,
            "rest": split.rest,
            "candidates": list(candidates),
            "answer_index": answer_index,
        }

    return convert
