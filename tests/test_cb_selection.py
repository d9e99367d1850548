"""evals/analysis/cb_selection.py on the committed CB records: its own selection (mi_decode.selection, its
vectorised macro-F1) gives the ratios the engine wrote to results.json, and the 306-input run's 56 validation
inputs, scored in other batches, give the 56-input run's ratios."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "evals" / "analysis" / "cb_selection.py"
RUN_56 = ROOT / "evals" / "reports" / "2026-11-30-smollm2-cpu-prompt_selection"
RUN_306 = ROOT / "evals" / "reports" / "2026-12-01-smollm2-cpu-cb_inputs"
SETTINGS = ("X", "A", "P", "PA")


@functools.cache
def analyse(run: Path, data_dir: Path) -> str:
    command = [sys.executable, str(SCRIPT), "--run", str(run), "--data-dir", str(data_dir)]
    command += ["--no-modes", "--resamples", "20"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=True).stdout


def picks(output: str) -> dict[str, tuple[float, float]]:
    """setting -> (ratio the script computes, ratio in results.json) from the 'pick against the oracle' table."""
    found = {}
    for setting in SETTINGS:
        match = re.search(
            rf"^{setting}\s+prompt_\d+\s+\S+\s+\d+\s+prompt_\d+\s+\S+\s+(\S+)\s+\((\S+)\)", output, re.M
        )
        assert match, (setting, output[:2000])
        found[setting] = (float(match[1]), float(match[2]))
    return found


def committed_ratios(run: Path, suite: str) -> dict[str, float]:
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    return results["suites"][suite]["cb"]["methods"]["mi"]


@pytest.mark.parametrize(
    ("run", "suite", "inputs"), [(RUN_56, "prompt_selection", 56), (RUN_306, "cb_inputs", 306)]
)
def test_the_analysis_reproduces_the_engine_ratios(run, suite, inputs, data_dir):
    output = analyse(run, data_dir)
    assert f"100 templates x {inputs} inputs" in output
    committed = committed_ratios(run, suite)
    for setting, (computed, reported) in picks(output).items():
        assert computed == pytest.approx(committed[setting], abs=5e-4), setting
        assert reported == pytest.approx(committed[setting], abs=5e-4), setting


def test_the_306_run_reproduces_the_56_input_run_on_its_validation_rows(data_dir):
    output = analyse(RUN_306, data_dir)
    line = re.search(r"^val \(56\)\s+(.*)$", output, re.M)
    assert line, output[-2000:]
    val = dict(re.findall(r"(\w+) (\d\.\d+)", line[1]))
    committed = committed_ratios(RUN_56, "prompt_selection")
    for setting in SETTINGS:
        assert float(val[setting]) == pytest.approx(committed[setting], abs=2e-3), setting
