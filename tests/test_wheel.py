"""The package as users install it: a shipped suite runs from a directory outside the checkout and writes the
report. scripts/floor.sh runs the whole suite against the built wheel with MI_DECODE_EXPECT_WHEEL=1, where
these tests also check that what ran is the wheel in site-packages, not the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mi_decode

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPECT_WHEEL = os.environ.get("MI_DECODE_EXPECT_WHEEL") == "1"


def test_the_imported_package_is_the_one_under_test():
    location = Path(mi_decode.__file__).resolve()
    if EXPECT_WHEEL:
        assert "site-packages" in location.parts and REPO_ROOT / "mi_decode" not in location.parents
    else:
        assert REPO_ROOT in location.parents  # the editable install of this checkout


def test_wheel_ships_its_suites_and_metric_modules():
    from mi_decode.eval.metrics import module_path
    from mi_decode.eval.suite import available_suites

    package = Path(mi_decode.__file__).resolve().parent
    suites = available_suites()
    assert {"grounding", "summarization", "open_ended", "prompt_selection", "pope"} <= set(suites)
    assert all(package in path.parents for path in suites.values())
    assert package in Path(module_path("nqswap")).resolve().parents
    assert (package / "py.typed").is_file()


@pytest.mark.embedded
def test_grounding_eval_from_outside_the_checkout(tmp_path, data_dir):
    """`mi-decode eval --suites grounding --limit 2 --data-dir ...` from a folder outside the checkout."""
    command = [
        str(Path(sys.executable).parent / "mi-decode"),
        "eval",
        "--suites",
        "grounding",
        "--limit",
        "2",
    ]
    command += ["--data-dir", str(data_dir), "--output-dir", "out", "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MI_DECODE_DATA_DIR", None)
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    grounding = results["suites"]["grounding"]
    assert grounding["nqswap"]["methods"]["greedy"]["n"] == 2
    assert grounding["memotrap"]["methods"]["cad"]["n"] == 8  # 2 per MemoTrap file
    assert "## grounding / nqswap" in (out / "report.md").read_text()
    assert sorted(path.name for path in out.glob("*.png"))
