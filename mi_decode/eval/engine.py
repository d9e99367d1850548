"""The evaluation runner: suites x tasks x methods over examples, resumable and sharded across processes.

Examples are cut into fixed batches of ``batch_size`` in data order; batch j is run by process
``j % num_processes`` with the random seed ``(seed, j)``. A batch's content and seed therefore do not depend
on the number of processes or on interruptions, so one process, two processes and a resumed run give the
same records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import __version__
from ..backends import BACKENDS, DEFAULT_BACKEND, Backend, backend_type, make_backend
from .kinds import EvalContext
from .registry import TASK_KINDS
from .store import ResultShard, check_run_settings, read_records, record_run_settings
from .suite import Suite, load_suite


@dataclasses.dataclass
class EvalSettings:
    """Options of ``mi-decode eval`` (see ``mi-decode eval --help``)."""

    suites: list[str]
    model: str | None = None
    output_dir: Path = Path("outputs/eval")
    data_dir: str | None = None
    limit: int | None = None
    quick: bool = False
    seed: int = 0
    batch_size: int = 4
    methods: list[str] | None = None
    tasks: list[str] | None = None  # a subset of the suites' task names (default: all)
    progress: bool = True
    backend: str = DEFAULT_BACKEND  # "vllm": prompt-selection tasks on a vLLM engine (other kinds refuse it)

    def __post_init__(self):
        if not self.suites:
            raise ValueError("name at least one suite")
        try:
            backend_type(self.backend)
        except ValueError:
            raise ValueError(
                f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            ) from None
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        self.output_dir = Path(self.output_dir)

    def run_settings(self, suite: Suite) -> dict[str, Any]:
        """What must match for stored records to be reused (the limit may grow; methods may be added). The
        backend is recorded only when it is not the default, so folders of earlier runs stay valid."""
        settings = {
            "model": self.model or "SmolLM2-135M-Instruct (embedded)",
            "seed": self.seed,
            "batch_size": self.batch_size,
            "suite": suite.fingerprint(),
        }
        if self.backend != DEFAULT_BACKEND:
            settings["backend"] = self.backend
        return settings


def _task_limit(settings: EvalSettings, task) -> int | None:
    if settings.limit is not None:
        return settings.limit
    return task.quick_limit if settings.quick else None


def _methods_of(settings: EvalSettings, task) -> list[str]:
    if settings.methods is None:
        return list(task.methods)
    return [method for method in task.methods if method in settings.methods]


def _selected_tasks(settings: EvalSettings, suite: Suite) -> list:
    """The suite's tasks that run at least one of the selected methods (and are among ``--tasks``)."""
    return [
        task
        for task in suite.tasks
        if _methods_of(settings, task) and (settings.tasks is None or task.name in settings.tasks)
    ]


def run_evaluation(settings: EvalSettings, model=None, tokenizer=None) -> dict[str, Any]:
    """Run (or resume) the suites; on the main process, return and write the results.

    With ``accelerate launch --num_processes N -m mi_decode.eval ...`` each process runs its share of the
    batches; the main process then summarises everything (other processes return ``{}``).

    The run's backend (:func:`mi_decode.backends.make_backend` on ``settings.backend``) goes into the run
    context; with ``settings.backend == "vllm"`` (prompt-selection tasks only) ``model`` may be a
    ``vllm.LLM``, by default one is started on ``settings.model`` when the first batch is scored.
    """
    from accelerate import PartialState

    # cpu=True lets accelerate form a gloo process group when there is no GPU (MULTI_CPU).
    state = PartialState(cpu=not torch.cuda.is_available())
    suites = [load_suite(name, data_dir=settings.data_dir) for name in settings.suites]
    unknown = set(settings.methods or ()) - {m for suite in suites for t in suite.tasks for m in t.methods}
    if unknown:
        raise ValueError(f"--methods names methods no selected task uses: {sorted(unknown)}")
    unknown = set(settings.tasks or ()) - {t.name for suite in suites for t in suite.tasks}
    if unknown:
        raise ValueError(f"--tasks names tasks the suites do not have: {sorted(unknown)}")
    backend_class = backend_type(settings.backend)
    # A given model must fit the backend (a vllm.LLM goes with 'vllm', a transformers model with 'hf').
    backend = None if model is None else make_backend(settings.backend, model=model, tokenizer=tokenizer)
    _check_backend(settings, backend_class, state, suites)  # before the data and any model
    from .data.common import recording_sources

    examples_by_task = {}
    data_sources = {}  # what each task's data was read from, for the report
    for suite in suites:  # all data before anything is written, so a refused run leaves no files
        for task in _selected_tasks(settings, suite):
            kind = _kind(task)
            with recording_sources() as sources:
                examples = kind.load(
                    task, data_dir=settings.data_dir, limit=_task_limit(settings, task), quick=settings.quick
                )
            data_sources[suite.name, task.name] = "; ".join(sources) or None
            kind.check_units(task, examples, [suite.methods[name] for name in _methods_of(settings, task)])
            examples_by_task[suite.name, task.name] = examples
    if state.is_main_process:
        for suite in suites:
            check_run_settings(settings.output_dir / suite.name, settings.run_settings(suite))
    state.wait_for_everyone()  # run.json is checked before any process writes records (it is written with them)
    if backend is None:  # after the data, so a bad data folder fails fast
        backend = backend_class.load(settings.model, device=state.device)
    ctx = EvalContext(
        model=backend.model, tokenizer=backend.tokenizer, data_dir=settings.data_dir, backend=backend
    )

    jobs = [
        (suite, task, group)
        for suite in suites
        for task in _selected_tasks(settings, suite)
        for group in _method_groups(task, [suite.methods[name] for name in _methods_of(settings, task)])
    ]
    for number, (suite, task, group) in enumerate(jobs, 1):
        examples = examples_by_task[suite.name, task.name]
        _run_methods(ctx, settings, state, suite, task, group, examples, f"{number} of {len(jobs)}")
    state.wait_for_everyone()
    if not state.is_main_process:
        return {}
    return collect_results(ctx, settings, suites, examples_by_task, data_sources)


def _kind(task):
    return TASK_KINDS.get(task.kind)()


def _runs(backend: type[Backend], kind_name: str) -> bool:
    """Whether ``backend`` supports everything tasks of the kind need from it."""
    return all(backend.supports(operation) for operation in TASK_KINDS.get(kind_name).backend_needs)


def _check_backend(settings: EvalSettings, backend: type[Backend], state, suites: list[Suite]) -> None:
    """Refuse, before the data and any model load (a refused run costs nothing), a backend that cannot run a
    selected task's kind, that runs in one process when there are several, or whose packages are missing."""
    for suite in suites:
        for task in _selected_tasks(settings, suite):
            if not _runs(backend, task.kind):
                kinds = [name for name in TASK_KINDS.names() if _runs(backend, name)]
                raise ValueError(
                    f"--backend {backend.name} runs {', '.join(kinds) or 'no'} tasks only; task "
                    f"{suite.name}/{task.name} is a {task.kind} task: run it with --backend {DEFAULT_BACKEND}, "
                    f"or select {' or '.join(kinds)} suites only"
                )
    backend.check_processes(state.num_processes)
    backend.check_available()


def _method_groups(task, methods: list) -> list[list]:
    """The task's methods in run order: those its kind can decode together (greedy MI methods share one
    prefill per batch) as one group, the others alone. Records do not depend on the grouping."""
    kind = _kind(task)
    together = [method for method in methods if kind.sweepable(task, method)]
    if len(together) < 2:
        return [[method] for method in methods]
    return [together] + [[method] for method in methods if method not in together]


def length_batches(ctx: EvalContext, task, examples: list[dict], size: int) -> list[list[dict]]:
    """The engine's batches of a task: examples sorted by the kind's length (ties in data order), cut into
    batches of ``size``. Batches of similar length pad little; the order depends on the examples only, so
    batch j (and its seed) is the same whatever the number of processes, and a resumed run finds the same
    batches."""
    kind = _kind(task)
    position = {e["id"]: i for i, e in enumerate(examples)}
    ordered = sorted(examples, key=lambda e: (kind.length(ctx, task, e), position[e["id"]]))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def _run_methods(ctx, settings, state, suite, task, methods: list, examples, place: str = "") -> None:
    directory = settings.output_dir / suite.name / task.name
    done = {method.name: read_records(directory, method.name) for method in methods}
    size = settings.batch_size
    kind = _kind(task)
    position = {e["id"]: i for i, e in enumerate(examples)}
    batches = list(enumerate(length_batches(ctx, task, examples, size)))
    mine = []
    for j, batch in batches:
        missing = [m for m in methods if any(e["id"] not in done[m.name] for e in batch)]
        if j % state.num_processes == state.process_index and missing:
            mine.append((j, batch, missing))
    if not mine:
        return
    remaining = sum(
        sum(e["id"] not in done[m.name] for e in batch) for _, batch, missing in mine for m in missing
    )
    # "k of N" places the bar in the whole run; finished bars stay on screen as a log of the run.
    bar = tqdm(
        total=remaining,
        desc=f"{place} {suite.name}/{task.name}/{'+'.join(m.name for m in methods)}".strip()[:100],
        disable=not settings.progress or not state.is_local_main_process,
        leave=True,
    )
    with contextlib.ExitStack() as stack:
        needed = {m.name for _, _, missing in mine for m in missing}
        # Shards create their files on the first record; run.json is written just before it, so a run that
        # fails before its first record leaves no files.
        shards = {
            name: stack.enter_context(ResultShard(directory, name, state.process_index)) for name in needed
        }
        for j, batch, missing in mine:
            torch.manual_seed(settings.seed * 1_000_003 + j)
            records = kind.run_many(ctx, task, missing, batch)
            record_run_settings(settings.output_dir / suite.name, settings.run_settings(suite))
            written = 0
            for method, method_records in zip(missing, records, strict=True):
                for example, record in zip(batch, method_records, strict=True):
                    if example["id"] not in done[method.name]:
                        shards[method.name].append(
                            {"id": example["id"], "index": position[example["id"]], **record}
                        )
                        written += 1
            # One update per batch: tqdm redraws at most every 0.1 s, so a burst of update(1) calls would leave
            # the bar showing the burst's first record until the next batch (1 of 100 for 8 done).
            bar.update(written)
    bar.close()


def collect_results(
    ctx: EvalContext,
    settings: EvalSettings,
    suites: list[Suite],
    examples_by_task,
    data_sources: dict[tuple[str, str], str | None] | None = None,
) -> dict:
    """Summaries of every (suite, task, method) from the stored records of the selected examples, with what
    the report needs to stand alone: each task's ``data_source`` (what its data was read from, where
    ``data_sources`` has it) and, per suite, the ``method_settings`` of the methods run (their options and
    the suite's ``note`` on where they come from)."""
    results: dict[str, Any] = {
        "settings": {
            **{
                key: str(value) if isinstance(value, Path) else value
                for key, value in dataclasses.asdict(settings).items()
            },
            "mi_decode": __version__,
        },
        "machine": machine_description(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "method_settings": {},
        "suites": {},
    }
    for suite in suites:
        suite_results = results["suites"][suite.name] = {}
        run = dict.fromkeys(
            m for task in _selected_tasks(settings, suite) for m in _methods_of(settings, task)
        )
        results["method_settings"][suite.name] = {
            name: {"settings": suite.methods[name].settings(), "note": suite.methods[name].note}
            for name in run
        }
        for task in _selected_tasks(settings, suite):
            examples = examples_by_task[suite.name, task.name]
            records_by_method = {}
            for method_name in _methods_of(settings, task):
                stored = read_records(settings.output_dir / suite.name / task.name, method_name)
                records_by_method[method_name] = [stored[e["id"]] for e in examples if e["id"] in stored]
            suite_results[task.name] = _kind(task).summarize_task(
                ctx, task, records_by_method, examples, settings.seed
            )
            source = (data_sources or {}).get((suite.name, task.name))
            if source:
                suite_results[task.name]["data_source"] = source
    return results


def machine_description() -> str:
    """CPU model and core count (and the GPU, if any) with the torch build, for the report header."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # not Linux
        pass
    parts = [f"{cpu} ({os.cpu_count()} cores)"]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name())
    return ", ".join([*parts, f"torch {torch.__version__}"])


def write_results(results: dict, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "results.json"
    path.write_text(json.dumps(results, indent=2))
    return path
