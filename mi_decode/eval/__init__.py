"""The evaluation engine behind ``mi-decode eval``: suites defined as YAML data (shipped in
``mi_decode/eval/suites``, or your own files), validated against registries of task kinds, data sets and
metrics, run resumably over examples, optionally sharded across processes with accelerate, and summarised
into ``results.json``, ``report.md`` and plots."""

from __future__ import annotations

__all__ = ["EvalSettings", "available_suites", "load_suite", "run_evaluation"]


def __getattr__(name: str):
    # Lazy, so that importing a light submodule (a metric, a data loader) does not load the engine.
    if name in ("EvalSettings", "run_evaluation"):
        from . import engine

        return getattr(engine, name)
    if name in ("available_suites", "load_suite"):
        from . import suite

        return getattr(suite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
