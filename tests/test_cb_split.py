"""CB's ``split`` option: the 250 train rows, or val then train (306), besides the default 56 val rows."""

from __future__ import annotations

import pytest

from mi_decode.eval import load_suite
from mi_decode.eval.data import RegisteredData, load_data
from mi_decode.eval.data.prompt_selection import load_task
from mi_decode.eval.registry import SuiteError


def test_cb_split_train_val_both(data_dir):
    val, train, both = (load_task("cb", data_dir, split=split) for split in ("val", "train", "both"))
    assert (len(val), len(train), len(both)) == (56, 250, 306)
    assert load_task("cb", data_dir) == val  # the default is unchanged
    assert both == val + train
    assert [sum(e["label"] == c for e in train) for c in range(3)] == [115, 119, 16]
    assert load_task("cb", data_dir, limit=60, split="both") == val + train[:4]

    examples = load_data("cb", data_dir=data_dir, options={"split": "both"})
    ids = [e["id"] for e in examples]
    assert ids[:56] == [e["id"] for e in load_data("cb", data_dir=data_dir)] == [f"cb-{i}" for i in range(56)]
    assert ids[56:] == [f"cb-train-{i}" for i in range(250)]


def test_cb_split_errors(data_dir):
    with pytest.raises(ValueError, match="one of val, train, both"):
        load_task("cb", data_dir, split="test")
    with pytest.raises(ValueError, match="applies to cb only"):
        load_task("rte", data_dir, split="train")
    with pytest.raises(SuiteError, match="takes no option"):
        load_data("rte", data_dir=data_dir, options={"split": "train"})


def test_cb_inputs_suite_parses(data_dir):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "evals" / "tuning" / "cb_inputs.yaml"
    if not path.is_file():
        pytest.skip("evals/tuning/cb_inputs.yaml is not in this checkout")
    suite = load_suite(path, data_dir=data_dir)
    (task,) = suite.tasks
    assert (task.data, task.options["templates"]) == (RegisteredData("cb", (("split", "both"),)), 100)
    assert (task.data.suite_form(), task.data.suite_options()) == ("cb", {"split": "both"})
