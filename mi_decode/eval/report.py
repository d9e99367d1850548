"""Human-readable output of an evaluation: the summary table, ``report.md`` and matplotlib plots.

``report.md`` stands alone: it names the data each task read, defines every method from its settings (and
the suite's note on where they come from), defines every column in one line (a metric's line comes from the
``definitions`` of its registered class, so a new metric brings its own), says why a value is blank, flags
intervals over fewer than :data:`FEW_EXAMPLES` examples, marks the paired differences that survive Holm's
correction over the task's comparisons and ends with the verdicts that do. The bar charts show each
method's n and 95% intervals: per method where the records are at hand, and against each baseline from the
paired comparisons in ``results.json``.

A method's summary may hold its metrics' own intervals under the reserved key ``"intervals"``:
``{summary key: {"low", "high", "n", "seed", "method"}}`` (``method`` says how the interval was made, e.g.
a bootstrap over texts). The report shows each beside its value, not as a column, and its legend names each
interval method.

Example:

```python
>>> from mi_decode.eval.report import define
>>> define("mean_length")
'the mean number of model tokens per output'
>>> "3-grams" in define("seq_rep_3"), define("no_such_column")
(True, None)

```
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from pathlib import Path
from typing import Any

# Below this many examples a bootstrap interval is too rough to read; report.md and the plots say so.
FEW_EXAMPLES = 10

# Columns and rows that a task kind makes rather than a metric (a metric defines its own keys).
_KIND_DEFINITIONS = {
    "n": "the number of examples the method was scored on",
    "selected / oracle": "(prompt selection) the macro-F1 of the answers of the template the method picks "
    "without labels, over that of the oracle, the best template in hindsight; 1 means it found the best "
    "template; per-input methods (mi_al, mi_agl, mdl, ppl_l) pick a template per input, so they can beat "
    "every single template: a ratio above 1",
    "X": "(prompt selection) no calibration: templates are selected and answer on the raw answer probabilities",
    "A": "(prompt selection) CBM calibration (Yang et al. 2024) on the answers only; selection on the raw "
    "probabilities",
    "P": "(prompt selection) CBM calibration on the selection scores only; the answers stay raw",
    "PA": "(prompt selection) CBM calibration on both the selection scores and the answers",
    "mean template": "(prompt selection) the templates' mean macro-F1 over the oracle's: what a template "
    "picked at random gets on average",
    "worst template": "(prompt selection) the worst template's macro-F1 over the oracle's",
    "oracle F1": "(prompt selection) the oracle template's macro-F1 itself (not a ratio); near chance (0.5 "
    "for two classes) the ratios say little",
}

# The reserved key of a method's summary that holds its metrics' own intervals (see the module docstring).
INTERVALS_KEY = "intervals"

_READING_NOTES = {
    "interval": "`0.170 [0.120, 0.225]`: the value and its 95% percentile bootstrap interval over examples "
    "(10,000 resamples of the stored records, seeded with the run's seed; zero width when every example "
    "has the same value, e.g. 0 correct of 200, where the bootstrap cannot say more)",
    "checked": "`difference from <baseline>` tables: each method's value minus the baseline's on the same "
    "examples, `+0.022 [+0.000, +0.044]` with a 95% percentile bootstrap interval over examples (10,000 "
    "resamples at the seed in the title); `t[-0.001, +0.044]` beside it is the 95% paired t-interval, a check "
    "of the interval's sign. `*`: the difference survives Holm's step-down correction at 0.05 over all the "
    "distinct comparisons of its task (each pair of methods and metric once, over every difference table; "
    "p-values of the two-sided paired t-test). `~`: sign not stable: the interval excludes 0, but the same "
    "bootstrap at the next seed or the t-interval does not. An interval that touches or contains 0 is no "
    "measurable difference on this sample, not evidence of none",
    "paired": "`difference from <baseline>` tables: each method's value minus the baseline's on the same "
    "examples, with a 95% percentile bootstrap interval over examples; an interval that contains 0 shows no "
    "difference on this sample, and pairing makes it narrower than two separate intervals",
    "blank": "`-`: a value undefined on this sample; the note under the table says why",
}


def _placeholder_pattern(template: str) -> re.Pattern:
    """``"seq_rep_{n}"`` -> a pattern matching ``seq_rep_4`` with ``n`` captured."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(re.escape(part) if i % 2 == 0 else rf"(?P<{part}>\d+)" for i, part in enumerate(parts))
    )


@functools.lru_cache(maxsize=1)
def _metric_definitions() -> tuple[tuple[re.Pattern, str], ...]:
    from .registry import METRICS

    return tuple(
        (_placeholder_pattern(template), text)
        for name in METRICS
        for template, text in getattr(METRICS.get(name), "definitions", {}).items()
    )


def define(key: str) -> str | None:
    """The one-line definition of a report column or row: from the ``definitions`` of the registered metric
    that makes it (placeholders such as ``{n}`` filled in), else from the task kinds' own columns; ``None``
    if nothing defines it."""
    for pattern, text in _metric_definitions():
        match = pattern.fullmatch(key)
        if match:
            for name, value in match.groupdict().items():
                text = text.replace("{" + name + "}", value)
            return text
    return _KIND_DEFINITIONS.get(key)


@functools.lru_cache(maxsize=1)
def _record_keys() -> dict[str, str]:
    """Summary key -> record key of every registered metric whose summary is the mean of a record field."""
    from .registry import METRICS

    keys: dict[str, str] = {}
    for name in METRICS:
        for summary, record in getattr(METRICS.get(name), "record_keys", {}).items():
            keys.setdefault(summary, record)
    return keys


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def method_intervals(results: dict, output_dir: Path) -> dict[tuple[str, str], dict[str, dict[str, dict]]]:
    """95% percentile bootstrap intervals of each method's per-example means (the same bootstrap as the
    paired comparisons), from the records stored under ``output_dir``:
    ``{(suite, task): {method: {summary key: {"low", "high", "n"}}}}``.

    A method gets intervals only where its records there are exactly the ones its summary was made from
    (same count, same mean); otherwise none, rather than an interval of other data.
    """
    from .metrics.stats import paired_difference
    from .store import read_records

    record_keys = _record_keys()
    seed = results.get("settings", {}).get("seed", 0) or 0
    intervals: dict[tuple[str, str], dict[str, dict[str, dict]]] = {}
    for suite_name, suite in results["suites"].items():
        for task_name, task in suite.items():
            directory = Path(output_dir) / suite_name / task_name
            if "inputs" in task or not directory.is_dir():  # prompt selection: no per-example values
                continue
            for method, summary in task["methods"].items():
                stored = read_records(directory, method).values()
                # Records beyond the examples of this summary (a larger --limit earlier) are not its data.
                records = [r for r in stored if r.get("index", 0) < task.get("examples", len(stored))]
                if len(records) != summary.get("n") or len(records) < 2:
                    continue
                for key, value in summary.items():
                    field = record_keys.get(key)
                    if field is None or not _is_number(value) or any(field not in r for r in records):
                        continue
                    values = [float(record[field]) for record in records]
                    if abs(sum(values) / len(values) - value) > 1e-9:
                        continue
                    mean = paired_difference(values, [0.0] * len(values), seed=seed, stability=False)
                    intervals.setdefault((suite_name, task_name), {}).setdefault(method, {})[key] = {
                        "low": mean["low"],
                        "high": mean["high"],
                        "n": mean["n"],
                    }
    return intervals


def _own_intervals(methods: dict) -> dict[str, dict[str, dict]]:
    """``{method: {summary key: interval}}`` of the intervals the summaries carry (``"intervals"``)."""
    return {
        method: dict(summary[INTERVALS_KEY])
        for method, summary in methods.items()
        if isinstance(summary.get(INTERVALS_KEY), dict)
    }


def _format(value: Any, interval: dict | None = None) -> str:
    if value is None:
        return "-"  # undefined on this sample (e.g. MAUVE on fewer than 32 texts)
    if isinstance(value, float):
        text = f"{value:.3f}"
        return f"{text} [{interval['low']:.3f}, {interval['high']:.3f}]" if interval else text
    return str(value)


def _task_size(task: dict) -> str:
    if "inputs" in task:
        return f"{task['examples']} templates x {task['inputs']} inputs; selected / oracle macro-F1"
    return f"{task['examples']} examples"


def _with_n(methods: list[str], summaries: dict) -> str:
    counts = {summaries[method].get("n") for method in methods}
    if len(counts) == 1 and len(methods) == len(summaries) > 1:
        return f"every method (n = {counts.pop()})"
    return ", ".join(f"{method} (n = {summaries[method].get('n')})" for method in methods)


def _task_notes(task: dict, intervals: dict) -> list[str]:
    """Why a value is blank, and which intervals rest on too few examples."""
    from .metrics.mauve import MAUVE_MIN_TEXTS

    notes = []
    methods = task["methods"]
    blank = [method for method, summary in methods.items() if "mauve" in summary and summary["mauve"] is None]
    few = [method for method in blank if (methods[method].get("n") or 0) < MAUVE_MIN_TEXTS]
    if few:
        notes.append(
            f"MAUVE is blank for {_with_n(few, methods)}: it needs at least {MAUVE_MIN_TEXTS} texts, and on "
            f"fewer its estimate is noise; rerun with --limit {MAUVE_MIN_TEXTS} or more to get it."
        )
    if len(few) < len(blank):
        rest = [method for method in blank if method not in few]
        notes.append(
            f"MAUVE is blank for {_with_n(rest, methods)}: it could not be computed on these texts "
            "(MAUVE could not cluster their features)."
        )
    undefined = sorted({k for s in methods.values() for k, v in s.items() if v is None and k != "mauve"})
    if undefined:
        notes.append(
            f"{', '.join(undefined)}: blank where undefined on the outputs (too few tokens for an n-gram, or no "
            "records)."
        )
    if any(isinstance(v, float) and math.isnan(v) for s in methods.values() for v in s.values()):
        notes.append("nan: the oracle template's F1 is 0 in that setting, so the ratio is undefined.")
    if "inputs" in task:
        notes += _selection_notes(task)
    counts = [d["n"] for by_key in intervals.values() for d in by_key.values()]
    if counts and min(counts) < FEW_EXAMPLES:
        notes.append(
            f"The intervals in this table rest on fewer than {FEW_EXAMPLES} examples (n = {min(counts)}): "
            "read them as rough."
        )
    return notes


def task_sections(
    results: dict, intervals: dict | None = None
) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, header, rows, notes) for every task: one row per method, one column per metric (with its 95%
    interval where ``intervals``, from :func:`method_intervals`, has one), then the paired tables."""
    intervals = intervals or {}
    sections = []
    for suite_name, suite in results["suites"].items():
        for task_name, task in suite.items():
            methods = task["methods"]
            # The summaries' own intervals, and those computed from the records (the same key: the records').
            own, computed = _own_intervals(methods), intervals.get((suite_name, task_name), {})
            found = {m: {**own.get(m, {}), **computed.get(m, {})} for m in dict.fromkeys([*own, *computed])}
            columns = []
            for summary in methods.values():
                columns += [key for key in summary if key not in columns and key != INTERVALS_KEY]
            header = ["method", *columns]
            rows = [
                [
                    method,
                    *(_format(summary.get(key, ""), found.get(method, {}).get(key)) for key in columns),
                ]
                for method, summary in methods.items()
            ]
            title = f"{suite_name} / {task_name} ({_task_size(task)})"
            sections.append((title, header, rows, _task_notes(task, found)))
            for paired in ([task["paired"]] if task.get("paired") else []) + task.get("paired_more", []):
                sections.append(_paired_table(f"{suite_name} / {task_name}", paired, task.get("comparisons")))
    return sections


def _paired_counts(paired: dict) -> list[int]:
    return [d["n"] for differences in paired["methods"].values() for d in differences.values()]


def paired_cell(d: dict) -> str:
    """A paired difference as the tables show it: the mean difference and its percentile interval, then,
    where results.json has them, ``*`` if it survives Holm's correction, ``~`` if its sign is not stable,
    and the paired t-interval.

    Example:

    ```python
    >>> from mi_decode.eval.report import paired_cell
    >>> d = {"difference": 0.135, "low": 0.065, "high": 0.205, "t_low": 0.06, "t_high": 0.21,
    ...      "holm_survives": True, "verdict": "higher"}
    >>> paired_cell(d)
    '+0.135 [+0.065, +0.205]* t[+0.060, +0.210]'
    >>> paired_cell({"difference": 0.022, "low": 0.0004, "high": 0.044, "t_low": -0.0006, "t_high": 0.044,
    ...              "holm_survives": False, "verdict": "sign not stable"})
    '+0.022 [+0.000, +0.044]~ t[-0.001, +0.044]'

    ```
    """
    from .metrics.stats import SIGN_NOT_STABLE

    text = f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
    text += "*" if d.get("holm_survives") else ""
    text += "~" if SIGN_NOT_STABLE in d.get("verdict", "") else ""
    if "t_low" in d:
        text += f" t[{d['t_low']:+.3f}, {d['t_high']:+.3f}]"
    return text


def _paired_table(
    title: str, paired: dict, comparisons: dict | None = None
) -> tuple[str, list[str], list[list[str]], list[str]]:
    """Each method minus the baseline, example by example: mean difference [95% bootstrap interval], with
    the Holm and sign marks and the t-interval where ``results.json`` has them."""
    methods = paired["methods"]
    metrics = list(next(iter(methods.values())))
    rows = [
        [method, *(paired_cell(d) for d in differences.values())] for method, differences in methods.items()
    ]
    counts = _paired_counts(paired)
    few = min(counts) < FEW_EXAMPLES
    seeds = sorted(
        {d["seed"] for differences in methods.values() for d in differences.values() if "seed" in d}
    )
    at_seed = f" at seed {', '.join(map(str, seeds))}" if seeds else ""
    title = (
        f"{title}: difference from {paired['baseline']} (paired over {max(counts)} examples, 95% bootstrap "
        f"interval{at_seed}{f'; under {FEW_EXAMPLES} examples, so a rough one' if few else ''})"
    )
    notes = []
    if comparisons:
        count, survive = comparisons["count"], comparisons["survive"]
        notes.append(
            f"This task makes {count} distinct comparison{'s' if count != 1 else ''} (each pair of methods and "
            f"metric once, over all its difference tables); `*` marks the {survive} that survive Holm's "
            f"correction at {comparisons['alpha']} over them (p-values: {comparisons['p_value']})."
        )
    if few:
        notes.append(
            f"Paired over fewer than {FEW_EXAMPLES} examples (n = {min(counts)}): one changed answer moves "
            "these intervals a lot; read them as rough."
        )
    return title, ["method", *metrics], rows, notes


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_text(results: dict) -> str:
    """The plain-text summary printed at the end of a run."""
    blocks = []
    for title, header, rows, notes in task_sections(results):
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
        lines = [title, "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
        lines += [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
        ]
        lines += [f"note: {note}" for note in notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def data_lines(results: dict) -> list[str]:
    """What the data was read from: per task as the loaders recorded it (``data_source``), one line where
    every task read the same; else (results of older runs) what the settings say."""
    sources = {
        f"{suite_name}/{task_name}": task.get("data_source")
        for suite_name, suite in results["suites"].items()
        for task_name, task in suite.items()
    }
    if not sources or not all(sources.values()):
        return [_data_dir_line(results["settings"])]
    if len(set(sources.values())) == 1:
        return [f"- Data read: {next(iter(sources.values()))}"]
    return ["- Data read:", *(f"  - `{task}`: {source}" for task, source in sources.items())]


def _data_dir_line(settings: dict) -> str:
    data_dir = settings.get("data_dir")
    if data_dir == "hub":
        return "- Data: the Hugging Face Hub copies (`--data-dir hub`)"
    if data_dir:
        return f"- Data directory: `{data_dir}`"
    return (
        "- Data: no data folder given or found, so the quick subsets bundled in the mi_decode package where "
        "they cover the run, else the Hugging Face Hub"
    )


def definition_lines(results: dict, intervals: dict | None = None) -> list[str]:
    """One Markdown line per column and row name in the report's tables, then how to read their cells."""
    keys: list[str] = []
    blank = paired = checked = False
    for suite in results["suites"].values():
        for task in suite.values():
            methods = task["methods"]
            keys += ["selected / oracle"] if "inputs" in task else []
            for summary in methods.values():
                keys += [key for key in summary if key != INTERVALS_KEY]
                blank = blank or any(value is None for value in summary.values())
            keys += [name for name in methods if "inputs" in task and define(name)]  # mean template, ...
            paired = paired or bool(task.get("paired"))
            checked = checked or bool(task.get("comparisons"))
    lines = []
    for key in dict.fromkeys(keys):
        text = define(key)
        lines.append(
            f"- `{key}`: {text}"
            if text
            else f"- `{key}`: no definition (its metric class defines no `{key}`)"
        )
    notes = [("interval", bool(intervals)), ("checked", checked), ("paired", paired and not checked)]
    lines += [f"- {_READING_NOTES[name]}" for name, wanted in notes if wanted]
    lines += own_interval_lines(results)
    lines += [f"- {_READING_NOTES['blank']}"] if blank else []
    return lines


def own_interval_lines(results: dict) -> list[str]:
    """One legend line per summary key and interval method of the intervals the summaries carry
    (``"intervals"``), with their seeds and example counts.

    Example:

    ```python
    >>> from mi_decode.eval.report import own_interval_lines
    >>> interval = {"low": 0.7, "high": 0.9, "n": 64, "seed": 0, "method": "bootstrap over texts"}
    >>> results = {"suites": {"s": {"t": {"methods": {"a": {"mauve": 0.8, "intervals": {"mauve": interval}}}}}}}
    >>> own_interval_lines(results)
    ['- `mauve` `0.800 [0.700, 0.900]`: the value and its 95% interval by bootstrap over texts (seed 0; n = 64)']

    ```
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}  # (key, interval method) -> seeds, counts, a cell
    for suite in results["suites"].values():
        for task in suite.values():
            methods = task["methods"]
            for method, own in _own_intervals(methods).items():
                for key, interval in own.items():
                    entry = found.setdefault(
                        (key, str(interval.get("method", "an unnamed method"))), {"seed": set(), "n": set()}
                    )
                    entry["seed"].add(interval.get("seed"))
                    entry["n"].add(interval.get("n"))
                    value = methods[method].get(key)
                    if "cell" not in entry and _is_number(value):
                        entry["cell"] = _format(float(value), interval)
    lines = []
    for (key, method), entry in found.items():
        shown = f" `{entry['cell']}`" if "cell" in entry else ""
        seeds = ", ".join(str(seed) for seed in sorted(entry["seed"], key=str))
        counts = ", ".join(str(n) for n in sorted(entry["n"], key=str))
        lines.append(
            f"- `{key}`{shown}: the value and its 95% interval by {method} (seed {seeds}; n = {counts})"
        )
    return lines


def method_lines(results: dict) -> list[str]:
    """One line per method run: its decoding rule and options, and the suite's note on where they come
    from; for results of older runs, which did not record them, a line that says so.

    Example:

    ```python
    >>> from mi_decode.eval.report import method_lines
    >>> settings = {"s": {"greedy": {"settings": {}, "note": None},
    ...                   "cad": {"settings": {"rule": "constant", "weight": 0.5}, "note": "CAD's weight"},
    ...                   "nucleus": {"settings": {"sample": True, "top_p": 0.9}, "note": None}}}
    >>> print("\\n".join(method_lines({"method_settings": settings, "suites": {"s": {}}})))
    - `greedy`: greedy decoding, no MI rule
    - `cad`: greedy decoding with the MI rule `constant`, weight 0.5. Origin: CAD's weight
    - `nucleus`: sampling, top_p 0.9, no MI rule

    ```
    """
    recorded = results.get("method_settings")
    if not recorded:
        return [
            "- This results.json does not record the methods' settings (an older run): see the suite's "
            "YAML file."
        ]
    lines = []
    several = len(recorded) > 1
    for suite_name, methods in recorded.items():
        if several:
            lines.append(f"- Suite `{suite_name}`:")
        for name, entry in methods.items():
            text = describe_method(entry.get("settings") or {})
            note = f". Origin: {entry['note']}" if entry.get("note") else ""
            lines.append(f"{'  ' if several else ''}- `{name}`: {text}{note}")
    return lines


def describe_method(settings: dict) -> str:
    """A method's settings in words: greedy decoding or sampling (with its options), then the MI rule and
    its options, or "no MI rule".

    Example:

    ```python
    >>> from mi_decode.eval.report import describe_method
    >>> describe_method({"rule": "adaptive", "jsd_scale": 2.0})
    'greedy decoding with the MI rule `adaptive`, jsd_scale 2.0'
    >>> describe_method({"sample": True, "typical_p": 0.2})
    'sampling, typical_p 0.2, no MI rule'

    ```
    """
    from .suite import SAMPLING_KEYS

    options = dict(settings)
    decoding = ["sampling" if options.pop("sample", False) else "greedy decoding"]
    decoding += [f"{key} {options.pop(key)}" for key in SAMPLING_KEYS[1:] if key in options]
    if not options:
        return ", ".join([*decoding, "no MI rule"])
    from ..m3id import MIConfig

    rule = options.pop("rule", MIConfig().rule)  # MIConfig's default rule where the suite names none
    return (
        ", ".join(decoding)
        + f" with the MI rule `{rule}`"
        + "".join(f", {k} {v}" for k, v in options.items())
    )


def no_drop_bound(difference: dict, metric: str = "") -> str:
    """The absence of harm a paired difference supports, as a bound: "no drop larger than X at 95%" with X
    the interval's lower end (never "does not lower"); the bound of a rise where the lower end is above 0.

    Example:

    ```python
    >>> from mi_decode.eval.report import no_drop_bound
    >>> no_drop_bound({"difference": 0.02, "low": -0.05, "high": 0.09}, "original_answer_rate")
    'no drop in original_answer_rate larger than 0.050 at 95%'

    ```
    """
    subject = f" in {metric}" if metric else ""
    if difference["low"] >= 0.0:
        return f"no drop{subject} at 95% (the interval's lower end is {difference['low']:+.3f})"
    return f"no drop{subject} larger than {-difference['low']:.3f} at 95%"


def _interval_verdicts(where: str, task: dict) -> list[str]:
    """For a task without paired comparisons (corpus-level metrics such as MAUVE, prompt-selection ratios):
    per summary key with intervals, the pairs of rows whose 95% intervals are disjoint, the only separation
    claimed there (overlapping intervals do not show a difference; disjoint ones are a conservative test).

    Example:
        >>> task = {"methods": {"a": {"mauve": 0.9, "intervals": {"mauve": {"low": 0.8, "high": 0.95}}},
        ...                     "b": {"mauve": 0.2, "intervals": {"mauve": {"low": 0.1, "high": 0.5}}},
        ...                     "c": {"mauve": 0.7, "intervals": {"mauve": {"low": 0.3, "high": 0.9}}}}}
        >>> print("\\n".join(_interval_verdicts("s / t", task)))
        - s / t, mauve (no paired comparison; disjoint 95% intervals, a conservative test not corrected for the 3 pairs): a above b; the other 2 pairs overlap (not separated)
    """
    by_key: dict[str, list[tuple[str, dict]]] = {}
    for method, summary in task["methods"].items():
        for key, interval in (summary.get("intervals") or {}).items():
            if _is_number(summary.get(key)):
                by_key.setdefault(key, []).append((method, {**interval, "value": summary[key]}))
    lines = []
    for key, rows in by_key.items():
        pairs = [(first, second) for index, first in enumerate(rows) for second in rows[index + 1 :]]
        disjoint = []
        for (a, x), (b, y) in pairs:
            if x["low"] > y["high"]:
                disjoint.append(f"{a} above {b}")
            elif y["low"] > x["high"]:
                disjoint.append(f"{b} above {a}")
        if not pairs:
            continue
        if disjoint:
            lines.append(
                f"- {where}, {key} (no paired comparison; disjoint 95% intervals, a conservative test not "
                f"corrected for the {len(pairs)} pairs): {', '.join(disjoint)}; the other "
                f"{len(pairs) - len(disjoint)} pairs overlap (not separated)"
            )
        else:
            lines.append(
                f"- {where}, {key} (no paired comparison): the 95% intervals of all {len(pairs)} pairs overlap: "
                "no method is separated from another"
            )
    return lines


def verdict_lines(results: dict) -> list[str]:
    """The report's "Verdicts": per task, one line per comparison that survives Holm's correction (method,
    metric, difference, interval, in plain words), then one line counting the others by their verdict.
    Each distinct comparison once, oriented as in the first table it appears in.

    Example:

    ```python
    >>> from mi_decode.eval.report import verdict_lines
    >>> d = {"difference": 0.135, "low": 0.065, "high": 0.205, "holm_survives": True, "verdict": "higher"}
    >>> e = {"difference": 0.01, "low": -0.02, "high": 0.04, "holm_survives": False,
    ...      "verdict": "no measurable difference"}
    >>> task = {"methods": {}, "paired": {"baseline": "greedy", "methods": {"cad": {"rate": d, "other": e}}},
    ...         "comparisons": {"count": 2, "survive": 1}}
    >>> print("\\n".join(verdict_lines({"suites": {"s": {"t": task}}})))
    - s / t: cad's rate is higher than greedy's: +0.135 [+0.065, +0.205], survives Holm over 2 comparisons
    - s / t: the other 1 of 2 comparisons: 1 no measurable difference

    ```
    """
    lines = []
    for suite_name, suite in results["suites"].items():
        for task_name, task in suite.items():
            where = f"{suite_name} / {task_name}"
            tables = ([task["paired"]] if task.get("paired") else []) + task.get("paired_more", [])
            comparisons = task.get("comparisons")
            if not tables:
                lines += _interval_verdicts(where, task)
                continue
            if not comparisons:
                lines.append(
                    f"- {where}: no verdicts: this results.json predates the Holm correction (rerun the "
                    "summary to get them)"
                )
                continue
            count = comparisons["count"]
            seen: set = set()
            rest: dict[str, int] = {}
            for table in tables:
                baseline = table["baseline"]
                for method, differences in table["methods"].items():
                    for metric, d in differences.items():
                        key = (frozenset((method, baseline)), metric)
                        if key in seen:
                            continue
                        seen.add(key)
                        if d.get("verdict") in ("higher", "lower"):
                            lines.append(
                                f"- {where}: {method}'s {metric} is {d['verdict']} than {baseline}'s: "
                                f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}], survives Holm "
                                f"over {count} comparisons"
                            )
                        else:
                            word = d.get("verdict", "no verdict")
                            rest[word] = rest.get(word, 0) + 1
            if rest:
                counted = "; ".join(f"{number} {word}" for word, number in rest.items())
                lines.append(f"- {where}: the other {sum(rest.values())} of {count} comparisons: {counted}")
    return lines


def write_report(results: dict, output_dir: Path, command: str) -> Path:
    """Write ``report.md`` and the plots next to ``results.json``; return the report's path."""
    output_dir = Path(output_dir)
    intervals = method_intervals(results, output_dir)
    plots = write_plots(results, output_dir, intervals)
    settings = results["settings"]
    lines = [
        "# mi_decode evaluation report",
        "",
        f"- Date: {results['date']}",
        f"- Machine: {results['machine']}",
        f"- Command: `{command}`",
        f"- Model: {settings['model'] or 'SmolLM2-135M-Instruct (embedded)'}; seed {settings['seed']}; "
        f"batch size {settings['batch_size']}; limit {settings['limit'] or ('quick' if settings['quick'] else 'none')}",
        *data_lines(results),
        "",
        "## Methods",
        "",
        *method_lines(results),
        "",
        "## What the columns mean",
        "",
        *definition_lines(results, intervals),
        "",
    ]
    for title, header, rows, notes in task_sections(results, intervals):
        lines += [f"## {title}", "", markdown_table(header, rows), ""]
        lines += [f"Note: {note}\n" for note in notes]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    verdicts = verdict_lines(results)
    if verdicts:
        lines += [
            "## Verdicts",
            "",
            "Only the paired differences whose 95% interval excludes 0, keeps its sign at the next seed and "
            "under the t-interval, and survives Holm's correction at 0.05 over its task's comparisons; "
            "every other comparison is counted, not claimed. A difference that is not measurable bounds the "
            "effect by its interval (e.g. no drop larger than the interval's lower end at 95%); it does not "
            "show that there is none.",
            "",
            *verdicts,
            "",
        ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _bar_keys(task: dict) -> list[str]:
    """The per-example means of a task (rates, accuracy, ROUGE): the paired keys, else the summary keys a
    registered metric computes from a record field."""
    methods = task["methods"]
    if task.get("paired"):
        keys = list(next(iter(task["paired"]["methods"].values())))
    else:
        record_keys = _record_keys()
        keys = [key for key in next(iter(methods.values()), {}) if key in record_keys]
    return [key for key in keys if any(_is_number(summary.get(key)) for summary in methods.values())]


def task_figures(results: dict, intervals: dict | None = None) -> list[tuple[str, Any]]:
    """``(file name, matplotlib figure)`` of every plot of the results; :func:`write_plots` saves them.

    - per-example means (NQ-Swap's two rates, accuracy, ROUGE): bars per method with n and their 95%
      intervals (where ``intervals`` has them), and a panel per baseline of the paired differences with
      their 95% intervals;
    - open-ended generation: seq-rep-4 against MAUVE, one point per sampler;
    - prompt selection: selected / oracle macro-F1 per method, X and PA;
    - ``pointwise_mi``: the mean pointwise MI (and the rule's weight) per generated token.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    intervals = intervals or {}
    figures = []
    for suite_name, suite in results["suites"].items():
        for task_name, task in suite.items():
            methods = task["methods"]
            figure = None
            keys = [] if "inputs" in task else _bar_keys(task)
            if keys:
                figure = _bar_figure(task_name, task, keys, intervals.get((suite_name, task_name), {}))
            elif any(s.get("mauve") is not None and s.get("seq_rep_4") is not None for s in methods.values()):
                figure = _scatter_figure(task_name, methods)
            elif any("PA" in s for s in methods.values()):
                figure = _selection_figure(task_name, task)
            if figure is not None:
                figures.append((f"{suite_name}_{task_name}.png", figure))
            if task.get("pointwise_mi"):
                figures.append(
                    (
                        f"{suite_name}_{task_name}_pointwise_mi.png",
                        _mi_curves_figure(task_name, task["pointwise_mi"], task.get("mi_weight"), methods),
                    )
                )
    return figures


def write_plots(results: dict, output_dir: Path, intervals: dict | None = None) -> list[Path]:
    """Save :func:`task_figures` as PNGs in ``output_dir``; return their paths."""
    import matplotlib.pyplot as plt

    written = []
    for name, figure in task_figures(results, intervals):
        path = Path(output_dir) / name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def _label(key: str) -> str:
    return key.replace("_", " ")


def _bar_figure(task_name: str, task: dict, keys: list[str], intervals: dict):
    """Bars per method and key with n and 95% intervals; then per baseline, each method's paired difference
    with its 95% interval."""
    import matplotlib.pyplot as plt

    methods = task["methods"]
    names = list(methods)
    pairs = ([task["paired"]] if task.get("paired") else []) + task.get("paired_more", [])
    value_width = max(5.0, 0.45 * len(names) * len(keys) + 1.5)
    figure, axes = plt.subplots(
        1,
        1 + len(pairs),
        figsize=(value_width + 4.5 * len(pairs), 4.8),
        squeeze=False,
        gridspec_kw={"width_ratios": [value_width] + [4.5] * len(pairs)},
    )
    bars = axes[0][0]
    width = 0.8 / len(keys)
    bounded = all(0.0 <= s[key] <= 1.0 for s in methods.values() for key in keys if _is_number(s.get(key)))
    tops = [0.0] * len(names)
    with_interval = False
    for k, key in enumerate(keys):
        positions = [i + (k - (len(keys) - 1) / 2) * width for i in range(len(names))]
        values = [methods[name].get(key) if _is_number(methods[name].get(key)) else 0.0 for name in names]
        bars.bar(positions, values, width, color=f"C{k}", label=_label(key))
        for i, (x, value, name) in enumerate(zip(positions, values, names, strict=True)):
            interval = intervals.get(name, {}).get(key)
            tops[i] = max(tops[i], value, interval["high"] if interval else value)
            if interval:
                with_interval = True
                bars.errorbar(
                    x,
                    value,
                    yerr=[[value - interval["low"]], [interval["high"] - value]],
                    fmt="none",
                    ecolor="black",
                    capsize=3,
                    linewidth=1,
                )
    top = max([*tops, 1.0 if bounded else 0.0]) or 1.0
    for i, name in enumerate(names):
        bars.text(
            i, tops[i] + 0.02 * top, f"n={methods[name].get('n', '?')}", ha="center", fontsize="x-small"
        )
    bars.set_ylim(0, top * 1.12)
    bars.set_xticks(range(len(names)), names, rotation=30, ha="right")
    bars.set_ylabel(" / ".join(_label(key) for key in keys))
    counts = [d["n"] for by_key in intervals.values() for d in by_key.values()]
    if with_interval:
        note = "error bars: 95% bootstrap interval"
        note += f" (n < {FEW_EXAMPLES}: rough)" if min(counts) < FEW_EXAMPLES else ""
    else:
        note = "no per-method interval (records not at hand); see the paired panels"
    bars.set_title(f"{task_name}: by method\n{note}", fontsize="medium")
    if len(keys) > 1:
        bars.legend(fontsize="small")
    for axis, paired in zip(axes[0][1:], pairs, strict=True):
        _paired_panel(axis, paired, keys)
    figure.tight_layout()
    return figure


def _paired_panel(axis, paired: dict, keys: list[str]) -> None:
    """Each method minus the baseline: mean difference with its 95% paired bootstrap interval."""
    others = list(paired["methods"])
    height = 0.8 / len(keys)
    for k, key in enumerate(keys):
        for i, method in enumerate(others):
            d = paired["methods"][method].get(key)
            if d is None:
                continue
            y = i + (k - (len(keys) - 1) / 2) * height
            axis.errorbar(
                d["difference"],
                y,
                xerr=[[d["difference"] - d["low"]], [d["high"] - d["difference"]]],
                fmt="o",
                color=f"C{k}",
                capsize=3,
                label=_label(key) if i == 0 else None,
            )
    axis.axvline(0.0, color="grey", linewidth=0.8)
    axis.set_yticks(range(len(others)), others)
    axis.invert_yaxis()  # the methods in table order, top to bottom
    counts = _paired_counts(paired)
    rough = f"; n < {FEW_EXAMPLES}: rough" if min(counts) < FEW_EXAMPLES else ""
    axis.set_title(
        f"minus {paired['baseline']}, same examples (n={max(counts)})\n95% paired bootstrap interval{rough}",
        fontsize="medium",
    )
    axis.set_xlabel("difference (colours as in the bars)" if len(keys) > 1 else "difference")


def _scatter_figure(task_name: str, methods: dict):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    points: dict[tuple[float, float], list[str]] = {}
    for method, summary in methods.items():
        if summary.get("mauve") is None or summary.get("seq_rep_4") is None:
            continue  # too few texts for MAUVE (see metrics.MAUVE_MIN_TEXTS)
        points.setdefault((summary["seq_rep_4"], summary["mauve"]), []).append(method)
    # A legend, not annotations: nearby samplers' labels overlap; identical points share one entry.
    for marker, ((x, y), names) in zip(itertools.cycle("osD^vP*Xh<>p"), points.items()):
        axes.scatter(x, y, s=50, marker=marker, label=" = ".join(names))
    axes.legend(fontsize="small")
    axes.set_xlabel("seq-rep-4 (lower is better)")
    axes.set_ylabel("MAUVE (higher is better)")
    counts = sorted({summary.get("n") for summary in methods.values()}, key=str)
    axes.set_title(f"{task_name}: repetition vs MAUVE by sampler (n={', '.join(map(str, counts))} texts)")
    figure.tight_layout()
    return figure


def _selection_intervals(task: dict) -> dict | None:
    """Any one of a prompt-selection task's intervals (they share n, seed and method), or None."""
    for summary in task["methods"].values():
        for interval in summary.get("intervals", {}).values():
            return interval
    return None


def _selection_notes(task: dict) -> list[str]:
    """A prompt-selection task's notes: what its intervals are, and what CBM's calibration does to every
    template (counts, not "every template")."""
    interval = _selection_intervals(task)
    if interval is None:  # a results.json from before the intervals
        notes = [
            "No intervals: each cell is one selection on these inputs, and the evaluation does not resample "
            "them."
        ]
    else:
        notes = [
            f"Intervals: each ratio's 95% percentile bootstrap interval over the {interval['n']} inputs "
            f"({interval['method']}; seed {interval['seed']}): a resample may select another template, and its "
            "ratio is over that resample's oracle. The oracle F1 row has none."
        ]
        outside = []
        for row, summary in task["methods"].items():
            settings = [
                setting
                for setting, bounds in summary.get("intervals", {}).items()
                if _is_number(summary.get(setting))
                and not bounds["low"] <= summary[setting] <= bounds["high"]
            ]
            outside += [f"{row} ({', '.join(settings)})"] if settings else []
        if outside:
            notes.append(
                f"The value lies outside its interval for {', '.join(outside)}: a resample's oracle is the best "
                f"of the {task['examples']} templates on that resample, which resampling pushes up (the more "
                "so near chance), so the resampled ratios lean low; read those intervals as biased low."
            )
    effect = task.get("calibration_effect")
    if effect:
        total = effect["better"] + effect["worse"] + effect["same"]
        notes.append(
            f"CBM on the answers (A, PA against X, P) makes {effect['better']} of the {total} templates better, "
            f"{effect['worse']} worse and leaves {effect['same']} the same (macro-F1); the mean-template ratio "
            f"goes from {effect['mean_template_ratio_uncalibrated']:.3f} to "
            f"{effect['mean_template_ratio_calibrated']:.3f}."
        )
        same = [method for method, equal in effect.get("same_template_x_pa", {}).items() if equal]
        if same:
            notes.append(
                f"X and PA pick the same template(s) for {', '.join(same)}: there the difference between X and "
                "PA is CBM's calibration of the answers, not a better selection."
            )
        elif "same_template_x_pa" in effect:
            notes.append("X and PA pick different templates for every method.")
    return notes


def _selection_figure(task_name: str, task: dict):
    import matplotlib.pyplot as plt

    methods = task["methods"]
    names = [name for name in methods if name != "oracle F1"]
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.4
    highest = 1.0
    for offset, setting in ((-width / 2, "X"), (width / 2, "PA")):
        positions = [i + offset for i in range(len(names))]
        values = [methods[name].get(setting, 0.0) for name in names]
        axes.bar(
            positions, values, width, label=f"{setting} ({'no calibration' if setting == 'X' else 'CBM'})"
        )
        for x, value, name in zip(positions, values, names, strict=True):
            interval = methods[name].get("intervals", {}).get(setting)
            if interval and _is_number(value):
                # Drawn about its middle: a percentile interval need not contain the point estimate.
                middle, half = (
                    (interval["low"] + interval["high"]) / 2,
                    (interval["high"] - interval["low"]) / 2,
                )
                axes.errorbar(
                    x,
                    middle,
                    yerr=half,
                    fmt="none",
                    ecolor="black",
                    capsize=2,
                    linewidth=1,
                )
                highest = max(highest, interval["high"])
    axes.axhline(1.0, color="black", linestyle="--", linewidth=0.8, label="oracle template")
    highest = max([highest, *(v for s in methods.values() for v in s.values() if _is_number(v))])
    axes.set_ylim(0, max(1.1, highest * 1.05))  # per-input selection can pass the oracle
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right")
    axes.set_ylabel("selected / oracle macro-F1")
    interval = _selection_intervals(task)
    what = (
        f"error bars: 95% bootstrap over inputs, selection rerun, {interval['method'].split(', ')[-1]}"
        if interval
        else "one selection, no interval"
    )
    axes.set_title(
        f"{task_name}: scaled F1 by prompt-selection method\n"
        f"({task['examples']} templates x n={task.get('inputs', '?')} inputs; {what})",
        fontsize="medium",
    )
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    return figure


def _mi_curves_figure(task_name: str, pointwise_mi: dict, weights: dict | None, methods: dict):
    """Mean pointwise MI of the chosen token per step, and (when recorded) the rule's mean weight per step.
    Each method has its own line style and marker, its markers at its own steps, and a line thinner than
    the methods drawn before it, so a curve that coincides with another's stays visible; the legend names
    curves that are identical."""
    import matplotlib.pyplot as plt

    panels = 2 if weights else 1
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.2), squeeze=False)
    counts = sorted({summary.get("n") for summary in methods.values()}, key=str)
    _mi_lines(axes[0][0], pointwise_mi)
    axes[0][0].axhline(0.0, color="grey", linewidth=0.5)
    axes[0][0].set_xlabel("generated token")
    axes[0][0].set_ylabel("mean log p_c - log p_u of the chosen token")
    axes[0][0].set_title(
        f"{task_name}: pointwise MI with the condition\n(mean over n={', '.join(map(str, counts))} examples)",
        fontsize="medium",
    )
    if weights:
        _mi_lines(
            axes[0][1],
            {method: curve for method, curve in weights.items() if curve},
            order=list(pointwise_mi),
        )
        axes[0][1].set_xlabel("generated token")
        axes[0][1].set_ylabel("mean weight w_t on l_c - l_u (0 where gated off)")
        axes[0][1].set_title(f"{task_name}: the rule's weight per step", fontsize="medium")
    figure.tight_layout()
    return figure


def _mi_lines(axis, curves: dict, order: list[str] | None = None) -> None:
    order = order or list(curves)
    lines, markers = ["-", "--", ":", "-."], "o^sDvPX*"
    count = len(order)
    drawn: dict[str, list] = {}
    for i, method in enumerate(order):
        curve = curves.get(method)
        if not curve:
            continue
        same = next((other for other, seen in drawn.items() if seen == list(curve)), None)
        axis.plot(
            range(1, len(curve) + 1),
            curve,
            linestyle=lines[i % len(lines)],
            marker=markers[i % len(markers)],
            markevery=(i % 4, 4),  # each method's markers on its own steps
            linewidth=1.0 + 2.5 * (count - 1 - i) / max(count - 1, 1),  # later lines thinner, on top
            alpha=0.85,
            label=f"{method} (= {same})" if same else method,
        )
        drawn[method] = list(curve)
    axis.legend(fontsize="small")
