"""Suite definitions: YAML files naming decoding methods and tasks, validated against the registries when
parsed, so a typo fails before any model loads.

A suite is data, not code. The suites shipped in the package are in ``mi_decode/eval/suites/``; any other
YAML file runs with ``mi-decode eval --suites my_suite.yaml``::

    name: grounding
    methods:                       # decoding methods, by name
      greedy: {}                   # plain greedy decoding
      cad: {rule: constant, weight: 1.0}                 # MIConfig's fields, verbatim
      m3id_cut: {rule: m3id, plausibility_beta: 0.1}
      nucleus: {sample: true, top_p: 0.9}                # sampling options
    tasks:
      - name: nqswap
        kind: generate             # a registered task kind: generate | choice | prompt_selection | pope
        data: nqswap               # a registered data set, or {path: my.jsonl, fields: {...}} (any file / Hub set)
        conditioned: "{{ substituted_context }} Q: {{ question }} A:"   # Jinja over the example's fields
        unconditioned: "Q: {{ question }} A:"
        metrics: [nqswap]          # registered metrics; options as {seq_rep: {n: 4}}
        methods: [greedy, cad, m3id_cut]

Method options: :class:`mi_decode.MIConfig`'s fields (``rule``, ``lam``, ``alpha``, ``weight``,
``max_weight``, ``plausibility_beta``, ``t0``, ``jsd_scale``; a method with any of them decodes with fused MI
amplification, validated by ``MIConfig.from_options`` against the rule table), and ``sample``, ``top_k``,
``top_p``, ``typical_p``, ``temperature`` (the last four need ``sample: true``), and ``note``: where the
settings come from (e.g. ``note: "text preset: tuned on NQ-Swap dev questions 200-299"``), which the report
prints beside the method's definition; it is not part of the suite's fingerprint, so adding one keeps earlier
run folders valid.

Task keys: ``name``, ``kind``, ``data``, ``data_options`` (keyword arguments of a registered data set),
``methods``, ``metrics``, ``conditioned``/``unconditioned`` (Jinja prompts), ``chat`` (wrap prompts in the
tokenizer's chat template), ``max_new_tokens``, ``quick_limit`` (examples with ``--quick``), ``diagnostics``
(record the MI rule's per-step weight and pointwise MI), ``baselines`` (methods every other method is
compared with, example by example; default the first method), ``options`` (kind-specific).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..m3id import MIConfig, MIConfigError
from .registry import METRICS, TASK_KINDS, SuiteError, load_extensions

if TYPE_CHECKING:  # the data package imports every loader: loaded when a task is parsed, not with this module
    from .data import DataSpec

SUITES_ENV = "MI_DECODE_SUITES"
MI_KEYS = tuple(f.name for f in dataclasses.fields(MIConfig))
SAMPLING_KEYS = ("sample", "top_k", "top_p", "typical_p", "temperature")
NOTE_KEY = "note"  # a method's origin, for the report (not in the fingerprint)
_SUITE_KEYS = {"name", "description", "methods", "tasks"}
_TASK_KEYS = {
    "name", "kind", "data", "data_options", "conditioned", "unconditioned", "chat", "metrics", "methods",
    "max_new_tokens", "quick_limit", "diagnostics", "options", "baselines",
}  # fmt: skip

__all__ = ["MethodSpec", "Suite", "SuiteError", "TaskSpec", "available_suites", "load_suite", "parse_suite"]


@dataclass(frozen=True)
class MethodSpec:
    """One decoding method of a suite: MI options (``MIConfig``'s fields) and sampling options."""

    name: str
    mi: tuple[tuple[str, Any], ...] = ()  # MIConfig options as given, in a hashable form
    sample: bool = False
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    temperature: float | None = None
    # Where the method's settings come from (e.g. a preset tuned on dev questions), for the report only: not
    # in the suite's fingerprint, so adding or editing a note keeps earlier run folders valid.
    note: str | None = field(default=None, compare=False)

    def settings(self) -> dict[str, Any]:
        """The method's options as the suite gave them: MI options, then the sampling ones that are set.

        Example:
            >>> from mi_decode.eval.suite import parse_method
            >>> parse_method("cad", {"rule": "constant", "weight": 0.5, "note": "CAD's weight"}, "s").settings()
            {'rule': 'constant', 'weight': 0.5}
        """
        sampling = {key: getattr(self, key) for key in SAMPLING_KEYS}
        return {**dict(self.mi), **{k: v for k, v in sampling.items() if v is not None and v is not False}}

    def mi_config(self) -> MIConfig | None:
        """The :class:`mi_decode.MIConfig` of this method, or ``None`` for plain decoding."""
        return MIConfig.from_options(dict(self.mi)) if self.mi else None


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite: a data set, how to prompt it, how to score it, and which methods to run.

    ``data`` is the task's ``data`` and ``data_options``, parsed once into a spec that loads them
    (:func:`mi_decode.eval.data.parse_data_spec`); ``data.suite_form()`` and ``data.suite_options()`` give
    back what the suite wrote."""

    name: str
    kind: str
    data: DataSpec
    methods: tuple[str, ...]
    metrics: tuple[tuple[str, dict[str, Any]], ...] = ()
    conditioned: str | None = None
    unconditioned: str | None = None
    chat: bool = False
    max_new_tokens: int = 32
    quick_limit: int = 4
    diagnostics: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    baselines: tuple[str, ...] = ()  # paired comparisons against these (default: the first method)
    base_dir: str | None = field(default=None, compare=False)  # the suite's folder: relative data paths

    def metric_objects(self) -> list:
        """The task's metrics, constructed with their options."""
        return [METRICS.get(name)(**options) for name, options in self.metrics]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    methods: dict[str, MethodSpec]
    tasks: tuple[TaskSpec, ...]
    source: str  # the file it came from

    def fingerprint(self) -> str:
        """A hash of everything that determines the results, to refuse mixing runs of different settings."""
        tasks = []
        for task in self.tasks:
            entry = asdict(task)
            entry.pop("base_dir")
            entry.pop("baselines")  # only how results are compared, not what the records hold
            # The data as the suite wrote it, as before it was parsed: earlier run folders stay valid.
            entry["data"], entry["data_options"] = task.data.suite_form(), task.data.suite_options()
            tasks.append(entry)
        methods = {}
        for name, spec in self.methods.items():
            methods[name] = asdict(spec)
            methods[name].pop("note")  # a note explains a method, it does not change its records
        payload = {"methods": methods, "tasks": tasks}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def suite_dirs() -> list[Path]:
    """Where suite names are looked up: ``$MI_DECODE_SUITES``, then the suites shipped in the package."""
    dirs = []
    if os.environ.get(SUITES_ENV):
        dirs.append(Path(os.environ[SUITES_ENV]).expanduser())
    dirs.append(Path(__file__).resolve().parent / "suites")
    return dirs


def available_suites() -> dict[str, Path]:
    """Suite name -> file, over :func:`suite_dirs` (earlier folders win)."""
    found: dict[str, Path] = {}
    for directory in reversed(suite_dirs()):
        if directory.is_dir():
            found.update({path.stem: path for path in sorted(directory.glob("*.yaml"))})
    return found


def load_suite(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Suite:
    """Load a suite by name (see :func:`available_suites`) or by path to a YAML file. ``data_dir`` (the
    CLI's ``--data-dir``) is where relative data paths are also looked for.

    Example:
        >>> from mi_decode.eval import load_suite
        >>> suite = load_suite("grounding")
        >>> [task.name for task in suite.tasks], sorted(suite.methods)[:2]
        (['nqswap', 'nqswap_original', 'memotrap'], ['adaptive', 'adaptive_text'])
    """
    path = Path(name_or_path)
    if not path.suffix:
        suites = available_suites()
        if str(name_or_path) not in suites:
            raise SuiteError(
                f"unknown suite {str(name_or_path)!r}; available: {', '.join(sorted(suites))} "
                f"(or give a path to a YAML file; set ${SUITES_ENV} to add a folder)"
            )
        path = suites[str(name_or_path)]
    if not path.is_file():
        raise SuiteError(f"suite file {str(path)!r} does not exist")
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        message = " ".join(str(error).split())
        raise SuiteError(f"{path}: not valid YAML: {message}") from None
    return parse_suite(raw, source=str(path), base_dir=path.resolve().parent, data_dir=data_dir)


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise SuiteError(f"{where}: {message}")


def _check_sampling(options: dict[str, Any], where: str) -> None:
    sample = options.get("sample", False)
    _require(isinstance(sample, bool), where, f"'sample' must be true or false, got {sample!r}")
    for key in SAMPLING_KEYS[1:]:
        if options.get(key) is None:
            continue
        _require(sample, where, f"{key!r} applies only with 'sample: true'")
        value = options[key]
        _require(
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value),
            where,
            f"{key!r} must be a number, got {value!r}",
        )
    if options.get("top_k") is not None:
        _require(
            isinstance(options["top_k"], int) and options["top_k"] >= 0,
            where,
            "'top_k' must be an integer >= 0",
        )
    for key in ("top_p", "typical_p"):
        if options.get(key) is not None:
            _require(0 < options[key] <= 1, where, f"{key!r} must be in (0, 1], got {options[key]}")
    if options.get("temperature") is not None:
        _require(
            options["temperature"] > 0, where, f"'temperature' must be > 0, got {options['temperature']}"
        )


def parse_method(name: str, options: Any, source: str) -> MethodSpec:
    """Validate one method's options (see the module docstring)."""
    where = f"{source}: method {name!r}"
    options = {} if options is None else options
    _require(isinstance(options, dict), where, "must map option names to values")
    unknown = [key for key in options if key not in (*MI_KEYS, *SAMPLING_KEYS, NOTE_KEY)]
    _require(
        not unknown,
        where,
        f"unknown option {unknown[0]!r}; known: {', '.join((*MI_KEYS, *SAMPLING_KEYS, NOTE_KEY))}"
        if unknown
        else "",
    )
    note = options.get(NOTE_KEY)
    _require(
        note is None or (isinstance(note, str) and note.strip()),
        where,
        f"'{NOTE_KEY}' must be a non-empty string, got {note!r}",
    )
    _check_sampling(options, where)
    mi = {key: value for key, value in options.items() if key in MI_KEYS}
    try:
        if mi:
            MIConfig.from_options(mi)
    except MIConfigError as error:
        raise SuiteError(f"{where}: {error}") from None
    sampling = {key: value for key, value in options.items() if key in SAMPLING_KEYS}
    return MethodSpec(name=name, mi=tuple(mi.items()), **sampling, note=note.strip() if note else None)


def _parse_metrics(raw: Any, where: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    _require(isinstance(raw, list), where, "'metrics' must be a list of metric names")
    metrics = []
    for entry in raw:
        if isinstance(entry, dict):
            _require(
                len(entry) == 1, where, f"a metric with options is one name mapped to them, got {entry!r}"
            )
            ((name, options),) = entry.items()
            options = options or {}
            _require(isinstance(options, dict), where, f"metric {name!r}: options must be a mapping")
        else:
            name, options = entry, {}
        metric = METRICS.get(name, where)
        try:
            metric(**options)
        except (TypeError, ValueError) as error:
            message = str(error)  # Metric's own errors name the metric already
            prefix = "" if message.startswith(f"metric {name!r}") else f"metric {name!r}: "
            raise SuiteError(f"{where}: {prefix}{message}") from None
        metrics.append((name, dict(options)))
    return tuple(metrics)


def parse_task(
    raw: Any, methods: dict[str, MethodSpec], source: str, base_dir: Path | None, data_dir=None
) -> TaskSpec:
    """Validate one task: its keys, kind, data, metrics, methods and the kind's own requirements."""
    from .data import validate_data_spec

    _require(isinstance(raw, dict), source, "each task must be a mapping")
    name = raw.get("name")
    _require(isinstance(name, str) and name, source, "each task needs a string 'name'")
    where = f"{source}: task {name!r}"
    unknown = sorted(set(raw) - _TASK_KEYS)
    _require(
        not unknown,
        where,
        f"unknown key {unknown[0]!r}; known: {', '.join(sorted(_TASK_KEYS))}" if unknown else "",
    )
    kind = TASK_KINDS.get(raw.get("kind"), where)()
    _require("data" in raw, where, "needs 'data' (a registered data set or {path: ...})")
    data_options = raw.get("data_options", {})
    _require(isinstance(data_options, dict), where, "'data_options' must be a mapping")
    data = validate_data_spec(raw["data"], where, base_dir, data_dir=data_dir, options=data_options)
    task_methods = raw.get("methods")
    _require(isinstance(task_methods, list) and task_methods, where, "'methods' must be a non-empty list")
    missing = [method for method in task_methods if method not in methods]
    _require(
        not missing,
        where,
        f"uses undefined method {missing[0]!r}; the suite defines {', '.join(methods)}" if missing else "",
    )
    baselines = raw.get("baselines", [])
    _require(
        isinstance(baselines, list) and all(b in task_methods for b in baselines),
        where,
        f"'baselines' must list methods of the task ({', '.join(task_methods)})",
    )
    parsed = ("methods", "metrics", "baselines", "data", "data_options")
    values = {key: value for key, value in raw.items() if key not in parsed}
    values["data"] = data
    values["baselines"] = tuple(baselines)
    values["metrics"] = _parse_metrics(raw.get("metrics", list(kind.default_metrics)), where)
    _require(isinstance(values.get("options", {}), dict), where, "'options' must be a mapping")
    for key in ("max_new_tokens", "quick_limit"):
        value = values.get(key, 1)
        _require(
            isinstance(value, int) and not isinstance(value, bool) and value >= 1,
            where,
            f"'{key}' must be a positive integer",
        )
    try:
        task = TaskSpec(**values, methods=tuple(task_methods), base_dir=str(base_dir) if base_dir else None)
    except TypeError as error:
        raise SuiteError(f"{where}: {error}") from None
    kind.check(task, [methods[m] for m in task.methods], where)
    return task


def parse_suite(raw: Any, source: str = "<suite>", base_dir: Path | None = None, data_dir=None) -> Suite:
    """Validate a suite's parsed YAML and build the :class:`Suite`; every name is checked against the
    registries (task kinds, data, metrics) and the MI rule table now, not mid-run."""
    load_extensions()  # first: an installed extension may add the MI rules the methods name
    _require(isinstance(raw, dict), source, "a suite must be a mapping with name, methods and tasks")
    unknown = sorted(set(raw) - _SUITE_KEYS)
    _require(
        not unknown,
        source,
        f"unknown key {unknown[0]!r}; known: {', '.join(sorted(_SUITE_KEYS))}" if unknown else "",
    )
    _require(isinstance(raw.get("name"), str) and raw["name"], source, "'name' must be a string")
    raw_methods = raw.get("methods")
    _require(isinstance(raw_methods, dict) and raw_methods, source, "'methods' must be a non-empty mapping")
    methods = {str(name): parse_method(str(name), options, source) for name, options in raw_methods.items()}
    raw_tasks = raw.get("tasks")
    _require(isinstance(raw_tasks, list) and raw_tasks, source, "'tasks' must be a non-empty list")
    tasks = tuple(parse_task(raw_task, methods, source, base_dir, data_dir) for raw_task in raw_tasks)
    names = [task.name for task in tasks]
    _require(len(set(names)) == len(names), source, "task names must be unique")
    check_requirements(tasks, source)
    return Suite(raw["name"], raw.get("description", ""), methods, tasks, source)


# What every run's report needs (its plots), besides what each task's kind and metrics declare.
REPORT_REQUIRES = {"matplotlib": "matplotlib"}


def check_requirements(tasks, source: str) -> None:
    """A one-line :class:`SuiteError` naming the first module that the report, a task's kind or one of its
    metrics will import and that is not installed, with the extra that brings it, before any work."""
    import importlib.util

    needs = [("the report's plots", REPORT_REQUIRES)]
    for task in tasks:
        needs.append((f"task {task.name!r} ({task.kind})", TASK_KINDS.get(task.kind).requires))
        needs += [
            (f"task {task.name!r}, metric {name!r}", METRICS.get(name).requires) for name, _ in task.metrics
        ]
    for user, modules in needs:
        for module, package in modules.items():
            if importlib.util.find_spec(module) is None:
                raise SuiteError(
                    f"{source}: {user} needs {package} (module {module}), which is not installed: "
                    'pip install "mi-decode[eval]"'
                )
