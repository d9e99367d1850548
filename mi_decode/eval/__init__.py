"""The evaluation engine behind ``mi-decode eval``: suites defined as YAML data (``evals/suites``), run
resumably over examples, optionally sharded across processes with accelerate, summarised into
``results.json``, ``report.md`` and plots."""

from .engine import EvalSettings, run_evaluation
from .suite import available_suites, load_suite

__all__ = ["EvalSettings", "available_suites", "load_suite", "run_evaluation"]
