"""The quick subsets bundled in the package: what they serve equals what the loaders give on the full data,
they are what scripts/bundle_data.py builds from evals/data today, they stay under their budget, and they
are used only where no data folder is given or found."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mi_decode.eval.data import DataNotFoundError, RegisteredData, common, load_data
from mi_decode.eval.data.bundled import BUDGET_BYTES, BUNDLED_DIR, bundled_examples
from mi_decode.eval.data.prompt_selection import TASKS, task_templates_path
from mi_decode.eval.suite import available_suites, load_suite

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bundle_data import build, digest  # noqa: E402  (the builder is a script: not in the wheel)


def quick_tasks():
    """(suite, task) of every shipped task on a registered set that a data folder can hold (not POPE)."""
    return [
        pytest.param(task, id=f"{suite}/{task.name}")
        for suite in sorted(available_suites())
        for task in load_suite(suite).tasks
        if isinstance(task.data, RegisteredData) and task.data.name != "pope"
    ]


@pytest.fixture
def no_data_folder(monkeypatch):
    """As for an installed wheel outside a checkout: no --data-dir, no variable, no checkout."""
    monkeypatch.delenv(common.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(common, "checkout_data_dir", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_bundle_is_a_fresh_build_of_evals_data_and_under_budget(tmp_path, data_dir):
    size = build(data_dir, tmp_path / "bundle")
    assert size <= BUDGET_BYTES
    assert digest(BUNDLED_DIR) == digest(tmp_path / "bundle"), "rebuild it: python scripts/bundle_data.py"


@pytest.mark.parametrize("task", quick_tasks())
def test_bundled_examples_are_the_loaders_examples_at_every_quick_limit(task, data_dir, no_data_folder):
    for limit in sorted({1, task.quick_limit // 2 or 1, task.quick_limit}):
        expected = task.data.load(data_dir=data_dir, limit=limit)
        assert task.data.load(limit=limit) == expected, limit


def test_requests_the_bundle_does_not_cover_go_on_to_the_hub(no_data_folder):
    assert bundled_examples("nqswap", {"split": "test"}, None) is None
    assert bundled_examples("nqswap", {"split": "test"}, 9) is None  # quick_limit 8
    assert bundled_examples("nqswap", {"split": "dev"}, 1) is None  # other options
    with pytest.raises(DataNotFoundError, match="No data for NQ-Swap.*HF_HUB_OFFLINE.*--quick only"):
        load_data("nqswap", limit=9, options={"split": "test"})
    with pytest.raises(DataNotFoundError, match="no copy on the Hugging Face Hub"):
        load_data("wikitext")


def test_a_data_folder_or_hub_comes_before_the_bundle(tmp_path, monkeypatch, no_data_folder):
    with pytest.raises(DataNotFoundError, match="no data folder given"):
        load_data("cb", data_dir="hub", limit=1)
    monkeypatch.setenv(common.DATA_DIR_ENV, "hub")
    with pytest.raises(DataNotFoundError, match="no data folder given"):
        load_data("cb", limit=1)
    with pytest.raises(ValueError, match="cb/val.jsonl: no such file"):
        load_data("cb", data_dir=tmp_path, limit=1)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_templates_come_from_the_data_folder_else_the_package(task, data_dir, no_data_folder):
    folder = TASKS[task][1]
    assert (
        task_templates_path(task, data_dir)
        == data_dir / "prompt_selection" / "templates" / folder / "templates.yaml"
    )
    bundled = task_templates_path(task)
    assert BUNDLED_DIR in bundled.parents
    assert bundled.read_bytes() == task_templates_path(task, data_dir).read_bytes()


def test_the_checkout_is_found_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(common.DATA_DIR_ENV, raising=False)
    (tmp_path / "mi_decode").mkdir()
    (tmp_path / "mi_decode" / "__init__.py").write_text("")
    (tmp_path / "evals" / "data").mkdir(parents=True)
    (tmp_path / "evals" / "data" / "README.md").write_text("x")
    (tmp_path / "deeper").mkdir()
    monkeypatch.chdir(tmp_path / "deeper")
    assert common.resolve_data_dir() == tmp_path / "evals" / "data"
    assert common.resolve_data_dir("hub") is None
