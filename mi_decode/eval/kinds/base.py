"""What every task kind shares: the run context, Jinja prompts, loading a task's data, and summaries built
from the task's registered metrics with paired comparisons between methods."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from ..registry import SuiteError

# Suite prompts are untrusted input: they render in jinja2's sandbox.
_JINJA = SandboxedEnvironment(keep_trailing_newline=False)


@dataclasses.dataclass
class EvalContext:
    """What kinds and metrics need from a run: the model, its tokenizer (or processor), the data folder, the
    backend that runs the model (:mod:`mi_decode.backends`; default: an HF backend on ``model``), and the
    run's seed, which seeds metrics' bootstrap intervals (set by :meth:`TaskKind.summarize_task`)."""

    model: Any
    tokenizer: Any
    data_dir: Any = None
    feature_extractor: Callable[[Sequence[str]], Any] | None = None  # for MAUVE; built on first use
    backend: Any = None  # a mi_decode.backends.Backend
    seed: int = 0

    def __post_init__(self):
        if self.backend is None:
            from ...backends import HFBackend

            self.backend = HFBackend(self.model, self.tokenizer)

    def mauve_features(self, texts: Sequence[str]):
        """MAUVE features of ``texts``: MiniLM sentence embeddings, else the evaluated model's states."""
        from ..metrics import mauve

        if self.feature_extractor is None:
            try:
                self.feature_extractor = mauve.MiniLMFeatureExtractor()
            except ModuleNotFoundError:  # the MiniLM package is optional: fall back to the evaluated model
                self.feature_extractor = mauve.CausalLMFeatureExtractor(self.model, self.tokenizer)
        return self.feature_extractor(texts)


def check_template(template: Any, where: str, which: str) -> set[str]:
    """Parse a suite's Jinja prompt now (not mid-run) and return the example fields it reads."""
    if not isinstance(template, str) or not template.strip():
        raise SuiteError(f"{where}: '{which}' must be a non-empty Jinja template string")
    try:
        return set(meta.find_undeclared_variables(_JINJA.parse(template)))
    except TemplateSyntaxError as error:
        raise SuiteError(
            f"{where}: the {which} template is not valid Jinja (line {error.lineno}): {error.message}"
        ) from None


def render(template: str, example: Mapping[str, Any], task, which: str) -> str:
    """``template`` rendered over the example's fields (sandboxed)."""
    try:
        text = _JINJA.from_string(template).render(**example)
    except Exception as error:  # a failing template is the suite's problem: say which and where
        raise SuiteError(
            f"task {task.name!r}: the {which} template failed on {example['id']!r}: {error}"
        ) from None
    if not text.strip():  # e.g. a field that is empty, or an attribute the sandbox renders as nothing
        raise SuiteError(f"task {task.name!r}: the {which} prompt of {example['id']!r} is empty")
    return text


class TaskKind:
    """A registered kind of task (``@register_kind``): how its units load, run, and are summarised.

    Units are dicts with a unique string ``"id"`` (examples, or templates for prompt selection); records are
    dicts stored per unit and method, so a killed run resumes where it stopped.
    """

    name = ""
    default_metrics: tuple[str, ...] = ()
    # Example fields -> type every task of the kind reads (besides its metrics'; see load_data for the types).
    fields: Mapping[str, str] = {}
    fields_note = ""  # what else it reads, for the field table of --help and the README
    # Modules the kind imports -> their packages, checked when a suite is parsed (paired bootstrap intervals).
    requires: Mapping[str, str] = {"scipy": "scipy"}
    # What the run's backend must support (mi_decode.backends.OPERATIONS), checked before any model loads:
    # kinds drive the transformers model themselves unless they say otherwise.
    backend_needs: tuple[str, ...] = ("forward", "generate")

    def check(self, task, methods: Sequence, where: str) -> None:
        """Parse-time checks of a task of this kind (prompts, methods); raise :class:`SuiteError`."""

    def required_fields(self, task) -> dict[str, str]:
        """Example fields -> type (see :func:`mi_decode.eval.data.load_data`) this task reads."""
        fields: dict[str, str] = dict(self.fields)
        for metric in task.metric_objects():
            fields.update(metric.fields)
        return fields

    def load(self, task, *, data_dir, limit: int | None, quick: bool) -> list[dict]:
        """The task's units: its data set (the spec parsed with the suite), checked for the fields the task
        reads."""
        return task.data.load(data_dir=data_dir, limit=limit, required=self.required_fields(task))

    def check_units(self, task, units: list[dict], methods: Sequence) -> None:
        """Render the task's prompts over every unit before the model loads, so that a sandbox refusal or an
        empty prompt stops the run at once; the unconditioned prompt only where an MI method will use it."""
        templates = [("conditioned", task.conditioned)]
        if any(method.mi for method in methods):
            templates.append(("unconditioned", task.unconditioned))
        for which, template in templates:
            if template:
                for unit in units:
                    render(template, unit, task, which)

    def length(self, ctx: EvalContext, task, unit: Mapping[str, Any]) -> int:
        """A unit's size, which the engine sorts by so that a batch holds units of similar length and pads
        little; here the characters of its text fields (kinds that pad prompts count tokens)."""
        return sum(len(value) for value in unit.values() if isinstance(value, str))

    def run(self, ctx: EvalContext, task, method, units: list[dict]) -> list[dict]:
        """Records (without ``id``/``index``) for a batch of units."""
        raise NotImplementedError

    def sweepable(self, task, method) -> bool:
        """Whether ``method`` may run in one :meth:`run_many` call with the task's other sweepable methods."""
        return False

    def run_many(self, ctx: EvalContext, task, methods: Sequence, units: list[dict]) -> list[list[dict]]:
        """Records of each method for a batch (a kind may share work between methods here)."""
        return [self.run(ctx, task, method, units) for method in methods]

    def score(self, ctx: EvalContext, task, units: list[dict], outputs: list[str]) -> list[dict]:
        """Every metric's per-example fields for ``outputs``, merged per example."""
        merged: list[dict] = [{} for _ in units]
        for metric in task.metric_objects():
            for fields, scored in zip(merged, metric.score(units, outputs, ctx), strict=True):
                fields.update(scored)
        return merged

    def summarize(self, ctx: EvalContext, task, records: list[dict]) -> dict[str, Any]:
        """One method's summary: every metric's values, in the order the task lists them."""
        summary: dict[str, Any] = {}
        if records:
            for metric in task.metric_objects():
                values = metric.summarize(records, ctx, task)
                # Metrics' intervals share the reserved key "intervals": merged, not replaced.
                intervals = {**summary.get("intervals", {}), **values.get("intervals", {})}
                summary.update(values)
                if intervals:
                    summary["intervals"] = intervals
        return summary

    def paired_keys(self, task) -> dict[str, str]:
        """Summary key -> record key of the values that can be compared example by example."""
        keys: dict[str, str] = {}
        for metric in task.metric_objects():
            keys.update(metric.record_keys)
        return keys

    def summarize_task(
        self, ctx: EvalContext, task, records_by_method: dict[str, list[dict]], units: list[dict], seed: int
    ) -> dict[str, Any]:
        """``results.json``'s entry for the task: per-method summaries with their ``n``, and each method
        minus the task's first method (``paired``), then minus each other baseline (``paired_more``),
        example by example, with 95% bootstrap intervals, Holm's correction over the task's comparisons
        (``comparisons``, see :func:`correct_comparisons`) and each comparison's verdict."""
        ctx.seed = seed  # the seed of the paired intervals below seeds the metrics' own intervals too
        methods = {}
        for name, records in records_by_method.items():
            methods[name] = {**self.summarize(ctx, task, records), "n": len(records)}
        results: dict[str, Any] = {"examples": len(units), "methods": methods}
        keys = self.paired_keys(task)
        paired = paired_differences(keys, records_by_method, seed)
        if paired:
            results["paired"] = paired
        more = []  # against the task's other baselines (the first is "paired")
        for baseline in getattr(task, "baselines", ())[1:]:
            if baseline in records_by_method:
                reordered = {baseline: records_by_method[baseline], **records_by_method}
                more.append(paired_differences(keys, reordered, seed))
        if any(more):
            results["paired_more"] = [entry for entry in more if entry]
        tables = ([paired] if paired else []) + results.get("paired_more", [])
        if tables:
            results["comparisons"] = correct_comparisons(tables)
        return results


def paired_differences(keys: Mapping[str, str], records_by_method: dict[str, list[dict]], seed: int) -> dict:
    """Each method minus the first (the baseline), example by example, with 95% bootstrap intervals, on the
    summary values that are per-example means (``keys``: summary key -> record key)."""
    from ..metrics.stats import paired_difference

    if not keys or len(records_by_method) < 2:
        return {}
    baseline_name, *others = records_by_method
    baseline = {record["id"]: record for record in records_by_method[baseline_name]}
    methods = {}
    for name in others:
        pairs = [
            (record, baseline[record["id"]]) for record in records_by_method[name] if record["id"] in baseline
        ]
        if len(pairs) < 2:
            continue
        methods[name] = {
            metric: paired_difference(
                [float(record[key]) for record, _ in pairs],
                [float(reference[key]) for _, reference in pairs],
                seed=seed,
            )
            for metric, key in keys.items()
        }
    return {"baseline": baseline_name, "methods": methods} if methods else {}


# How a task's comparisons are corrected for multiplicity; recorded in results.json with the count.
HOLM_ALPHA = 0.05
COMPARISON_FAMILY = (
    "every distinct paired comparison of the task: each pair of methods and metric once, over all its "
    "difference tables (a minus b and b minus a are one comparison)"
)
COMPARISON_TEST = "two-sided paired t-test on the per-example differences"


def correct_comparisons(tables: Sequence[dict]) -> dict[str, Any]:
    """Holm's correction at 0.05 over one task's paired comparisons (:func:`paired_differences` entries,
    the ``paired`` table then the ``paired_more`` ones), in place: each comparison gets ``holm_survives``,
    ``holm_adjusted_p`` and its ``verdict`` (:func:`~mi_decode.eval.metrics.stats.comparison_verdict`).
    The family is every distinct (pair of methods, metric): "b minus a" in a later table is the same
    comparison as "a minus b" (its t-test p-value is the same), so it counts once and gets the same mark.

    Returns the task's ``comparisons`` entry: ``{"count", "survive", "alpha", "correction", "family",
    "p_value"}``.

    Example:

    ```python
    >>> from mi_decode.eval.kinds.base import correct_comparisons
    >>> d = {"difference": 0.1, "low": 0.05, "high": 0.15, "n": 100, "second_low": 0.05, "second_high": 0.15,
    ...      "t_low": 0.05, "t_high": 0.15, "p_value": 0.001}
    >>> flipped = {**d, "difference": -0.1, "low": -0.15, "high": -0.05, "second_low": -0.15,
    ...            "second_high": -0.05, "t_low": -0.15, "t_high": -0.05}
    >>> tables = [{"baseline": "greedy", "methods": {"cad": {"rate": d}}},
    ...           {"baseline": "cad", "methods": {"greedy": {"rate": flipped}}}]
    >>> correct_comparisons(tables)["count"], d["verdict"], flipped["verdict"], flipped["holm_survives"]
    (1, 'higher', 'lower', True)

    ```
    """
    from ..metrics.stats import comparison_verdict, holm

    family: dict[tuple[frozenset, str], list[dict]] = {}
    for table in tables:
        for method, differences in table["methods"].items():
            for metric, difference in differences.items():
                pair = frozenset((method, table["baseline"]))
                family.setdefault((pair, metric), []).append(difference)
    members = list(family.values())
    p_values = [entries[0].get("p_value", math.nan) for entries in members]
    survives, adjusted = holm(p_values, HOLM_ALPHA) if members else ([], [])
    for entries, survived, adjusted_p in zip(members, survives, adjusted, strict=True):
        for difference in entries:
            difference["holm_survives"] = survived
            difference["holm_adjusted_p"] = adjusted_p
            difference["verdict"] = comparison_verdict(difference, survived, len(members))
    return {
        "count": len(members),
        "survive": sum(survives),
        "alpha": HOLM_ALPHA,
        "correction": "Holm step-down",
        "family": COMPARISON_FAMILY,
        "p_value": COMPARISON_TEST,
    }
