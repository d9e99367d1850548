"""benchmarks/run_all.py: its quick CPU run writes every figure (keys, not speed), and a missing figure fails it."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

RUN_ALL = REPO_ROOT / "benchmarks" / "run_all.py"

# Written out here rather than taken from run_all.py, so that a figure dropped there fails this test too.
MI_SHORT = ["plain", "best plain", "plain 2B", "fused", "drop-in", "hf"]
MI_LONG = ["plain", "best plain", "fused", "drop-in"]
MI_MEMORY = ["plain", "fused", "drop-in", "hf"]
TYPICAL_CASES = [
    f"{name} B={batch} V=49152 tau={tau}"
    for name in ("random N(0,3^2)", "SmolLM2 next-token")
    for batch in (1, 8)
    for tau in (0.2, 0.95)
]


def quick_cpu_keys() -> list[str]:
    """Every figure of ``run_all.py --device cpu --quick``: bench_mi on the tiny Llama at batch 1 and 4, the
    long context and the memory of each path; the typical warper idle and busy; both scoring workloads."""
    mi = "mi/llama-tiny"
    keys = []
    for batch in (1, 4):
        for unit in ("ms_per_token", "ratio_to_plain", "ratio_to_best_plain"):
            keys += [f"{mi}/batch/{batch}/{unit}/{method}" for method in MI_SHORT]
    for unit in ("seconds", "ratio_to_plain", "ratio_to_best_plain"):
        keys += [f"{mi}/long_context/{unit}/{method}" for method in MI_LONG]
    for path in MI_MEMORY:
        keys += [f"{mi}/memory/{path}/peak_rss_mib", f"{mi}/memory/{path}/rss_increase_mib"]
    for mode in ("idle", "busy"):
        for case in TYPICAL_CASES:
            keys += [
                f"typical/{mode}/cases/{case}/{f}" for f in ("transformers_ms", "mi_decode_ms", "speedup")
            ]
    for workload in ("SST-2", "AG News"):
        keys += [f"scoring/workloads/{workload}/{f}" for f in ("engine s", "naive s", "naive/engine")]
    return keys


@pytest.fixture
def run_all(monkeypatch):
    spec = importlib.util.spec_from_file_location("run_all", RUN_ALL)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.embedded
def test_quick_cpu_run_writes_every_figure(tmp_path, data_dir):
    out = tmp_path / "results.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MI_DECODE_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, str(RUN_ALL), "--device", "cpu", "--quick", "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    figures = report["figures"]
    absent = [key for key in quick_cpu_keys() if key not in figures]
    assert not absent, absent
    assert report["missing"] == []
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in figures.values())
    assert report["machine"] and report["date"] and set(report["commands"]) == {
        "mi/llama-tiny", "typical/idle", "typical/busy", "scoring"
    }  # fmt: skip
    # The ratios are the times divided by the anchors' times.
    for prefix, unit in (
        ("mi/llama-tiny/batch/4", "ms_per_token"),
        ("mi/llama-tiny/long_context", "seconds"),
    ):
        for anchor, anchor_name in (("ratio_to_plain", "plain"), ("ratio_to_best_plain", "best plain")):
            expected = figures[f"{prefix}/{unit}/fused"] / figures[f"{prefix}/{unit}/{anchor_name}"]
            assert figures[f"{prefix}/{anchor}/fused"] == pytest.approx(expected)
    case = f"typical/busy/cases/{TYPICAL_CASES[-1]}"
    assert figures[f"{case}/speedup"] == pytest.approx(
        figures[f"{case}/transformers_ms"] / figures[f"{case}/mi_decode_ms"]
    )
    assert "fused: " in done.stdout  # every ratio is printed


def fake_results(job) -> dict:
    """A benchmark's JSON holding exactly the figures run_all expects of ``job``, each 1.0."""
    tree: dict = {}
    for key in job.expected:
        *parents, leaf = key.split("/")
        # Scoring's figure names hold a slash ("naive/engine"): rebuild them from the expected list's shape.
        if parents[:1] == ["workloads"] and len(parents) == 3:
            parents, leaf = parents[:2], f"{parents[2]}/{leaf}"
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = 1.0
    return tree


@pytest.mark.parametrize("damage", ["none", "drop", "nan", "fail"])
def test_a_missing_figure_exits_non_zero(run_all, monkeypatch, tmp_path, damage):
    victim = "mi/llama-tiny/batch/4/ratio_to_best_plain/fused"

    def run_bench(job, folder, timeout):
        if damage == "fail" and job.name == "scoring":
            return None  # the benchmark crashed or timed out
        results = fake_results(job)
        if job.name == "mi/llama-tiny" and damage in ("drop", "nan"):
            row = results["batch"]["4"]["ratio_to_best_plain"]
            if damage == "drop":
                del row["fused"]
            else:
                row["fused"] = math.nan
        return results

    monkeypatch.setattr(run_all, "run_bench", run_bench)
    monkeypatch.setattr(run_all, "machine", lambda: "test machine")
    out = tmp_path / "results.json"
    code = run_all.main(["--device", "cpu", "--quick", "--out", str(out)])
    report = json.loads(out.read_text())
    if damage == "none":
        assert code == 0 and report["missing"] == []
        assert sorted(report["figures"]) == sorted(quick_cpu_keys())
    elif damage == "fail":
        assert code == 1
        assert report["missing"] == [k for k in quick_cpu_keys() if k.startswith("scoring/")]
    else:
        assert code == 1 and report["missing"] == [victim]


def test_a_crashing_benchmark_is_reported_missing(run_all, monkeypatch, tmp_path, capsys):
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setattr(run_all, "SCRIPTS", dict.fromkeys(run_all.SCRIPTS, crash))
    monkeypatch.setattr(run_all, "machine", lambda: "test machine")
    out = tmp_path / "results.json"
    assert run_all.main(["--device", "cpu", "--quick", "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert sorted(report["missing"]) == sorted(quick_cpu_keys()) and report["figures"] == {}
    assert "failed (exit code 3)" in capsys.readouterr().err


def test_cuda_without_a_gpu_is_a_one_line_error(run_all, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert run_all.main(["--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip() == "run_all.py: --device cuda, but torch sees no CUDA device here"
