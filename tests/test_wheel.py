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
    import inspect

    from mi_decode.eval.metrics import load, module_path
    from mi_decode.eval.suite import available_suites

    package = Path(mi_decode.__file__).resolve().parent
    suites = available_suites()
    assert {"grounding", "summarization", "open_ended", "prompt_selection", "pope"} <= set(suites)
    assert all(package in path.parents for path in suites.values())
    # The evaluate script is generated into the cache, and its module is the installed package's metric.
    assert package not in Path(module_path("nqswap")).resolve().parents
    assert package in Path(inspect.getfile(type(load("nqswap")).metric)).resolve().parents
    assert (package / "py.typed").is_file()


def build_wheel(out: Path) -> Path:
    """This checkout's wheel, built into ``out`` (without build isolation where setuptools is at hand)."""
    import importlib.util

    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO_ROOT)]
    if importlib.util.find_spec("setuptools"):
        command.append("--no-build-isolation")
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    (wheel,) = out.glob("mi_decode-*.whl")
    return wheel


def fresh_venv_with(wheel: Path, folder: Path) -> Path:
    """A new venv holding the wheel, installed by pip; its dependencies are this environment's, seen through
    a .pth file (a path line adds the folder only, so this environment's editable mi_decode stays out)."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=300)
    python = folder / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=600)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    parents = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(site) / "_dependencies.pth").write_text("\n".join(parents) + "\n")
    return folder / "bin"


@pytest.mark.embedded
def test_the_installed_wheel_runs_the_quick_eval_offline_outside_any_checkout(tmp_path):
    """The wheel, pip-installed into a new venv, run from an empty folder with HF_HUB_OFFLINE=1 and no data
    folder: `mi-decode eval --quick` reads the quick subsets bundled in the package and writes its report.
    The whole quick evaluation runs in the wheel stage (scripts/floor.sh); the editable stage runs its
    prompt-selection suite, so that each stage builds and installs the wheel."""
    bin_dir = fresh_venv_with(build_wheel(tmp_path / "dist"), tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("MI_DECODE_DATA_DIR", None)
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import mi_decode; print(mi_decode.__file__)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(tmp_path / "venv"), where
    command = [str(bin_dir / "mi-decode"), "eval", "--quick", "--output-dir", "out", "--no-progress"]
    if not EXPECT_WHEEL:
        command += ["--suites", "prompt_selection"]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    out = work / "out"
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["data_dir"] is None
    report = (out / "report.md").read_text()
    assert "quick subsets bundled in the mi_decode package" in report
    suites = (
        ["prompt_selection"]
        if not EXPECT_WHEEL
        else ["grounding", "summarization", "open_ended", "prompt_selection"]
    )
    assert sorted(results["suites"]) == sorted(suites)
    if EXPECT_WHEEL:
        assert results["suites"]["grounding"]["nqswap"]["methods"]["greedy"]["n"] == 8  # its quick_limit
        assert "## grounding / nqswap" in report
    assert sorted(path.name for path in out.glob("*.png"))
    assert sorted(path.name for path in work.iterdir()) == ["out"]
