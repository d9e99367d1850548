"""Suite definitions: YAML files (``evals/suites/*.yaml``) naming the decoding methods and the tasks.

A suite is data, not code::

    name: grounding
    methods:                       # decoding methods, by name
      greedy: {}
      cad: {mi: constant, weight: 1.0}
      m3id: {mi: m3id}
    tasks:
      - name: nqswap
        kind: generate             # generate | choice | prompt_selection | pope
        data: nqswap               # a loader in DATA_LOADERS
        conditioned: "{{ substituted_context }} Q: {{ question }} A:"   # Jinja over the example's fields
        unconditioned: "Q: {{ question }} A:"
        metric: nqswap             # a metric in mi_decode.eval.tasks
        methods: [greedy, cad, m3id]

Method options: ``mi`` (``m3id`` | ``constant``, fused MI decoding), ``weight``, ``lam``, ``alpha``,
``max_weight``, ``plausibility`` (VCD's beta); ``sample`` (bool), ``top_k``, ``top_p``, ``typical_p``,
``temperature``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUITES_ENV = "MI_DECODE_SUITES"
TASK_KINDS = ("generate", "choice", "prompt_selection", "pope")
_METHOD_KEYS = {
    "mi", "weight", "lam", "alpha", "max_weight", "plausibility", "sample", "top_k", "top_p", "typical_p",
    "temperature",
}  # fmt: skip
_TASK_KEYS = {
    "name", "kind", "data", "data_options", "conditioned", "unconditioned", "chat", "metric", "methods",
    "max_new_tokens", "quick_limit", "diagnostics", "options",
}  # fmt: skip


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and the offending entry."""


@dataclass(frozen=True)
class MethodSpec:
    """One decoding method of a suite (see the module docstring for the options)."""

    name: str
    mi: str | None = None
    weight: float | None = None
    lam: float | None = None
    alpha: float | None = None
    max_weight: float | None = None
    plausibility: float | None = None
    sample: bool = False
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    temperature: float | None = None

    def mi_config(self):
        """The :class:`mi_decode.m3id.MIConfig` of this method, or ``None`` for plain decoding."""
        if self.mi is None:
            return None
        from ..m3id import MIConfig

        options = {"lam": self.lam, "alpha": self.alpha, "weight": self.weight, "max_weight": self.max_weight}
        return MIConfig(
            rule=self.mi,
            plausibility_beta=self.plausibility,
            **{key: value for key, value in options.items() if value is not None},
        )


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite: a data set, how to prompt it, how to score it, and which methods to run."""

    name: str
    kind: str
    data: str
    methods: tuple[str, ...]
    conditioned: str | None = None
    unconditioned: str | None = None
    chat: bool = False
    metric: str | None = None
    max_new_tokens: int = 32
    quick_limit: int = 4
    diagnostics: bool = False
    data_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    methods: dict[str, MethodSpec]
    tasks: tuple[TaskSpec, ...]
    source: str  # the file it came from

    def fingerprint(self) -> str:
        """A hash of everything that determines the results, to refuse mixing runs of different settings."""
        payload = {
            "methods": {name: asdict(spec) for name, spec in self.methods.items()},
            "tasks": [asdict(task) for task in self.tasks],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def suite_dirs() -> list[Path]:
    """Where suite files are looked up: ``$MI_DECODE_SUITES``, then the suites shipped in the package."""
    dirs = []
    if os.environ.get(SUITES_ENV):
        dirs.append(Path(os.environ[SUITES_ENV]).expanduser())
    dirs.append(Path(__file__).resolve().parent / "suites")
    return dirs


def available_suites() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in reversed(suite_dirs()):  # earlier directories win
        if directory.is_dir():
            found.update({path.stem: path for path in sorted(directory.glob("*.yaml"))})
    return found


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    """Load a suite by name (a file in :func:`suite_dirs`) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        suites = available_suites()
        if str(name_or_path) not in suites:
            raise SuiteError(
                f"unknown suite {str(name_or_path)!r}; available: {sorted(suites)} "
                f"(looked in {[str(d) for d in suite_dirs()]}; set ${SUITES_ENV} to add a folder)"
            )
        path = suites[str(name_or_path)]
    if not path.is_file():
        raise SuiteError(f"suite file {str(path)!r} does not exist")
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid YAML: {error}") from None
    return parse_suite(raw, source=str(path))


def _require(condition: bool, source: str, message: str) -> None:
    if not condition:
        raise SuiteError(f"{source}: {message}")


def parse_suite(raw: Any, source: str = "<suite>") -> Suite:
    """Validate a suite's parsed YAML and build the :class:`Suite`."""
    _require(isinstance(raw, dict), source, "a suite must be a mapping with name, methods and tasks")
    _require(isinstance(raw.get("name"), str), source, "'name' must be a string")
    raw_methods = raw.get("methods")
    _require(isinstance(raw_methods, dict) and raw_methods, source, "'methods' must be a non-empty mapping")
    methods = {}
    for name, options in raw_methods.items():
        options = options or {}
        _require(isinstance(options, dict), source, f"method {name!r} must map option names to values")
        unknown = set(options) - _METHOD_KEYS
        _require(not unknown, source, f"method {name!r} has unknown options {sorted(unknown)}")
        _require(
            options.get("mi") in (None, "m3id", "constant"),
            source,
            f"method {name!r}: mi must be m3id or constant",
        )
        try:
            methods[name] = MethodSpec(name=name, **options)
            methods[name].mi_config()  # validates the MI arguments now, not mid-run
        except (TypeError, ValueError) as error:
            raise SuiteError(f"{source}: method {name!r}: {error}") from None
    raw_tasks = raw.get("tasks")
    _require(isinstance(raw_tasks, list) and raw_tasks, source, "'tasks' must be a non-empty list")
    tasks = []
    for raw_task in raw_tasks:
        _require(isinstance(raw_task, dict), source, "each task must be a mapping")
        name = raw_task.get("name")
        _require(isinstance(name, str), source, "each task needs a string 'name'")
        unknown = set(raw_task) - _TASK_KEYS
        _require(not unknown, source, f"task {name!r} has unknown keys {sorted(unknown)}")
        _require(
            raw_task.get("kind") in TASK_KINDS, source, f"task {name!r}: kind must be one of {TASK_KINDS}"
        )
        task_methods = tuple(raw_task.get("methods") or ())
        _require(bool(task_methods), source, f"task {name!r} lists no methods")
        missing = [method for method in task_methods if method not in methods]
        _require(not missing, source, f"task {name!r} uses undefined methods {missing}")
        tasks.append(TaskSpec(**{**raw_task, "methods": task_methods}))
    names = [task.name for task in tasks]
    _require(len(set(names)) == len(names), source, "task names must be unique")
    return Suite(raw["name"], raw.get("description", ""), methods, tuple(tasks), source)
