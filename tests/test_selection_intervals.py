"""Prompt selection's bootstrap intervals (mi_decode.eval.selection_intervals) and CBM's per-template counts:
the vectorised resamples against a plain loop of select_prompts and macro_f1, the selection rerun in each
resample, seeding, and the report's notes and figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mi_decode import selection
from mi_decode.eval.kinds.prompt_selection import SETTINGS, calibration_effect, summarize_selection
from mi_decode.eval.selection_intervals import (
    indices_to_weights,
    percentile_interval,
    resample_weights,
    selection_intervals,
    selection_resamples,
)
from mi_decode.rank import macro_f1


def score_table(templates: int, inputs: int, choices: int, seed: int):
    """Random per-choice log-probs [T, X, Y], labels [X] and perplexities [T, X]."""
    rng = np.random.default_rng(seed)
    log_probs = np.log(rng.dirichlet(np.ones(choices), size=(templates, inputs)))
    return log_probs, rng.integers(0, choices, inputs), rng.uniform(2.0, 9.0, (templates, inputs))


def as_records(log_probs, labels, perplexity):
    """What the prompt_selection kind's summary reads: one record per template, the inputs in a unit."""
    content_free = np.zeros((log_probs.shape[0], 3, log_probs.shape[2]))
    records = [
        {"log_probs": lp.tolist(), "content_free": cf.tolist(), "perplexity": ppl.tolist()}
        for lp, cf, ppl in zip(log_probs, content_free, perplexity, strict=True)
    ]
    inputs = [{"label": int(label)} for label in labels]
    return records, [{"inputs": inputs} for _ in records]


def naive_ratios(log_probs, labels, perplexity, indices, method: str, setting: str):
    """Float64 loop: per resample, gather the inputs, select with select_prompts, score with sklearn's
    macro-F1. (selected / oracle, mean template / oracle, worst template / oracle, selected template)."""
    found = []
    for rows in indices:
        chosen = selection.select_prompts(
            log_probs[:, rows],
            method=method,
            calibration="none" if setting == "X" else "cbm",
            setting=setting,
            perplexity=perplexity[:, rows],
        )
        truth = labels[rows]
        f1 = np.array([macro_f1(truth, answers) for answers in chosen.predictions])
        oracle = f1.max()
        selected = macro_f1(truth, chosen.selected_predictions)
        found.append((selected / oracle, f1.mean() / oracle, f1.min() / oracle, chosen.selected))
    return np.array(found)


def test_the_vectorised_resamples_match_a_naive_loop():
    log_probs, labels, perplexity = score_table(3, 20, 3, seed=1)
    rng = np.random.default_rng(7)
    indices = np.vstack([np.arange(20), rng.integers(0, 20, size=(5, 20))])  # the full data, then 5 draws
    resampled = selection_resamples(log_probs, labels, indices_to_weights(indices, 20), perplexity)
    for setting in SETTINGS:
        for method in selection.METHODS:
            expected = naive_ratios(log_probs, labels, perplexity, indices, method, setting)
            np.testing.assert_allclose(resampled.ratios[method][setting], expected[:, 0], rtol=0, atol=1e-12)
            np.testing.assert_allclose(resampled.ratios["mean template"][setting], expected[:, 1], atol=1e-12)
            np.testing.assert_allclose(
                resampled.ratios["worst template"][setting], expected[:, 2], atol=1e-12
            )
            if method in selection.TASK_WISE_METHODS:
                assert resampled.selected[method][setting].tolist() == expected[:, 3].astype(int).tolist()


def test_weights_of_ones_give_the_summary_point_estimates():
    log_probs, labels, perplexity = score_table(5, 30, 4, seed=2)
    rows = summarize_selection(*as_records(log_probs, labels, perplexity), seed=0, resamples=50)["methods"]
    ones = selection_resamples(log_probs, labels, np.ones((1, 30)), perplexity)
    for row, by_setting in ones.ratios.items():
        for setting, values in by_setting.items():
            assert values[0] == pytest.approx(rows[row][setting], abs=1e-12), (row, setting)
    for setting in SETTINGS:
        assert ones.oracle_f1[setting][0] == pytest.approx(rows["oracle F1"][setting], abs=1e-12)


def test_the_bootstrap_reruns_the_selection_in_each_resample():
    """On close templates the pick changes between resamples; an interval that kept the full-data pick and
    only resampled its F1 (and the oracle) differs."""
    log_probs, labels, perplexity = score_table(3, 20, 2, seed=3)
    weights = resample_weights(20, 300, seed=0)
    resampled = selection_resamples(log_probs, labels, weights, perplexity, methods=["mi"], settings=["X"])
    picks = resampled.selected["mi"]["X"]
    assert len(set(picks.tolist())) > 1
    full = selection.select_prompts(log_probs, method="mi", calibration="none", setting="X").selected
    # The fixed selection, resampled the naive way: the full-data pick's F1 over each resample's oracle.
    indices = np.concatenate([np.repeat(np.arange(20), w.astype(int))[None] for w in weights])
    fixed = []
    for rows in indices:
        f1 = [macro_f1(labels[rows], answers) for answers in log_probs[:, rows].argmax(-1)]
        fixed.append(f1[full] / max(f1))
    rerun = resampled.ratios["mi"]["X"]
    changed = picks != full
    np.testing.assert_allclose(rerun[~changed], np.array(fixed)[~changed], atol=1e-12)
    assert not np.allclose(rerun[changed], np.array(fixed)[changed])
    assert percentile_interval(rerun) != percentile_interval(np.array(fixed))


def test_the_same_seed_gives_the_same_intervals_and_another_seed_others():
    log_probs, labels, perplexity = score_table(4, 25, 3, seed=4)
    first = selection_intervals(log_probs, labels, perplexity, resamples=200, seed=5)
    again = selection_intervals(log_probs, labels, perplexity, resamples=200, seed=5)
    other = selection_intervals(log_probs, labels, perplexity, resamples=200, seed=6)
    assert first == again
    assert first != other
    cell = first["mi"]["PA"]
    assert cell["n"] == 25 and cell["seed"] == 5
    assert cell["method"] == "bootstrap over inputs, selection rerun in each resample, 200 resamples"
    assert set(first) == {*selection.METHODS, "mean template", "worst template"}


def test_the_intervals_contain_the_point_estimates():
    log_probs, labels, perplexity = score_table(4, 60, 3, seed=8)
    summary = summarize_selection(*as_records(log_probs, labels, perplexity), seed=0, resamples=500)
    rows = summary["methods"]
    for row in ("mi", "mi_ag", "mdl_m", "mi_al", "mean template", "worst template"):
        for setting in SETTINGS:
            interval = rows[row]["intervals"][setting]
            assert interval["low"] <= rows[row][setting] <= interval["high"], (row, setting)
    assert "intervals" not in rows["oracle F1"]


def test_the_resample_weights_count_draws_with_replacement():
    weights = resample_weights(7, 50, seed=3)
    assert weights.shape == (50, 7) and (weights.sum(axis=1) == 7).all()
    assert (resample_weights(7, 50, seed=3) == weights).all()
    assert indices_to_weights([[2, 2, 0]], 3).tolist() == [[1.0, 0.0, 2.0]]
    with pytest.raises(ValueError, match="input indices below 3"):
        indices_to_weights([[3]], 3)


def test_bad_shapes_are_one_line_errors():
    log_probs, labels, perplexity = score_table(2, 5, 2, seed=0)
    with pytest.raises(ValueError, match=r"`weights` must have shape \[R, 5\]"):
        selection_resamples(log_probs, labels, np.ones((2, 4)), perplexity)
    with pytest.raises(ValueError, match="class indices below 2"):
        selection_resamples(log_probs, labels + 2, np.ones((1, 5)), perplexity)
    with pytest.raises(ValueError, match="need `perplexity`"):
        selection_resamples(log_probs, labels, np.ones((1, 5)))


def constructed_calibration_case():
    """Labels [0, 0, 0, 1] and three templates: CBM fixes the first (it always answers 0), breaks the second
    (right without it; input 2 flips to 1) and leaves the third (right either way)."""
    p0 = np.array([[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.6, 0.3], [0.9, 0.9, 0.9, 0.1]])
    log_probs = np.log(np.stack([p0, 1 - p0], axis=-1))
    return log_probs, np.array([0, 0, 0, 1]), np.ones((3, 4))


def test_calibration_effect_counts_templates_made_better_worse_and_the_same():
    log_probs, labels, perplexity = constructed_calibration_case()
    summary = summarize_selection(*as_records(log_probs, labels, perplexity), seed=0, resamples=20)
    effect = summary["calibration_effect"]
    assert (effect["better"], effect["worse"], effect["same"]) == (1, 1, 1)
    # Without CBM: F1 3/7, 1, 1; with it: 11/15 for the first two (answers 0, 0, 1, 1), 1 for the third.
    assert effect["mean_template_ratio_uncalibrated"] == pytest.approx((3 / 7 + 2) / 3)
    assert effect["mean_template_ratio_calibrated"] == pytest.approx((2 * 11 / 15 + 1) / 3)
    assert effect["mean_template_ratio_uncalibrated"] == summary["methods"]["mean template"]["X"]
    assert effect["mean_template_ratio_calibrated"] == summary["methods"]["mean template"]["A"]
    assert set(effect["same_template_x_pa"]) == set(selection.METHODS)
    # ppl: the same perplexities, so the first template in either setting.
    assert effect["same_template_x_pa"]["ppl"] is True


def test_calibration_effect_by_hand():
    effect = calibration_effect([0.5, 0.6, 0.4, 0.2], [0.7, 0.6, 0.3, 0.1])
    assert (effect["better"], effect["worse"], effect["same"]) == (1, 2, 1)
    assert effect["mean_template_ratio_uncalibrated"] == pytest.approx(0.425 / 0.6)
    assert effect["mean_template_ratio_calibrated"] == pytest.approx(0.425 / 0.7)
    assert math.isnan(calibration_effect([0.0], [0.0])["mean_template_ratio_calibrated"])
    with pytest.raises(ValueError, match="one F1 per template"):
        calibration_effect([0.5], [0.5, 0.6])


def selection_task(with_intervals: bool) -> dict:
    log_probs, labels, perplexity = score_table(4, 30, 2, seed=9)
    summary = summarize_selection(*as_records(log_probs, labels, perplexity), seed=0, resamples=100)
    if not with_intervals:
        for row in summary["methods"].values():
            row.pop("intervals", None)
    return {"examples": 4, "inputs": 30, **summary}


def test_the_report_notes_say_what_the_intervals_are_and_count_the_templates():
    from mi_decode.eval.report import _task_notes

    task = selection_task(with_intervals=True)
    notes = " ".join(_task_notes(task, {}))
    assert "No intervals" not in notes
    assert "95% percentile bootstrap interval over the 30 inputs" in notes
    assert "selection rerun in each resample, 100 resamples; seed 0" in notes
    effect = task["calibration_effect"]
    assert f"makes {effect['better']} of the 4 templates better, {effect['worse']} worse" in notes
    assert f"{effect['mean_template_ratio_uncalibrated']:.3f} to" in notes
    old = " ".join(_task_notes({"examples": 4, "inputs": 30, "methods": {"mi": {"X": 0.5}}}, {}))
    assert "No intervals: each cell is one selection" in old


def test_the_report_names_values_outside_their_interval():
    from mi_decode.eval.report import _task_notes

    task = selection_task(with_intervals=True)
    task["methods"]["mean template"]["X"] = task["methods"]["mean template"]["intervals"]["X"]["high"] + 0.01
    notes = " ".join(_task_notes(task, {}))
    assert "The value lies outside its interval for mean template (X):" in notes
    assert "outside its interval" not in " ".join(_task_notes(selection_task(with_intervals=True), {}))


@pytest.mark.parametrize("with_intervals", [True, False])
def test_the_selection_figure_draws_with_and_without_intervals(with_intervals):
    import matplotlib.pyplot as plt

    from mi_decode.eval.report import task_figures

    results = {"suites": {"prompt_selection": {"sst2": selection_task(with_intervals)}}}
    ((name, figure),) = task_figures(results)
    title = figure.axes[0].get_title()
    assert name == "prompt_selection_sst2.png"
    assert (
        "error bars: 95% bootstrap over inputs, selection rerun, 100 resamples" in title
    ) == with_intervals
    assert ("no interval" in title) != with_intervals
    plt.close(figure)


# ----------------------------------------------------------------------------------------------------------
# The committed runs: the vectorised path gives their values, and CBM's per-template counts (issue 22)
# ----------------------------------------------------------------------------------------------------------

REPORTS = Path(__file__).resolve().parents[1] / "evals" / "reports"
RUN_64 = ("2026-11-30-smollm2-cpu-prompt_selection", "prompt_selection")
RUN_306 = ("2026-12-01-smollm2-cpu-cb_inputs", "cb_inputs")
# (run, task): templates CBM's answer calibration makes (better, worse, the same), and the methods whose
# pick is the same in X and PA (there PA's gain over X is calibration, not selection).
COMMITTED = {
    (RUN_64, "sst2"): ((84, 16, 0), {"mi", "zlp", "zpm", "zmv", "ppl", "ppl_l"}),
    (RUN_64, "agnews"): ((98, 2, 0), {"mi", "mi_ag", "ppl", "ppl_l"}),
    (RUN_64, "rte"): ((87, 9, 4), {"ppl", "ppl_l"}),
    (RUN_64, "cb"): ((77, 23, 0), {"le", "ppl", "ppl_l"}),
    (RUN_306, "cb"): ((67, 33, 0), {"le", "ppl", "ppl_l"}),
}


def committed_run(run: tuple[str, str], task: str, data_dir: Path):
    """Log-probs, labels and perplexities of a committed run's task, and its results.json entry."""
    from mi_decode.eval.data.prompt_selection import load_task

    folder, suite = run
    records = {}
    for file in sorted((REPORTS / folder / suite / task).glob("scores.part*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                records[record["id"]] = record  # a resumed run's later record wins
    records = sorted(records.values(), key=lambda record: record["index"])
    count = int(records[0]["id"].split("@")[1])
    split = ("val" if count <= 56 else "both") if task == "cb" else None
    labels = np.array([example["label"] for example in load_task(task, data_dir, limit=count, split=split)])
    results = json.loads((REPORTS / folder / "results.json").read_text(encoding="utf-8"))
    return (
        np.array([record["log_probs"] for record in records]),
        labels,
        np.array([record["perplexity"] for record in records]),
        results["suites"][suite][task],
    )


@pytest.mark.parametrize(("run", "task"), list(COMMITTED), ids=[f"{r[1]}-{t}" for r, t in COMMITTED])
def test_the_committed_runs_reproduce_and_count_what_cbm_does_to_each_template(run, task, data_dir):
    log_probs, labels, perplexity, committed = committed_run(run, task, data_dir)
    ones = selection_resamples(log_probs, labels, np.ones((1, len(labels))), perplexity)
    for row, by_setting in ones.ratios.items():
        for setting, values in by_setting.items():
            assert values[0] == pytest.approx(committed["methods"][row][setting], abs=1e-12), (row, setting)
    f1 = {}
    for setting in ("X", "A"):
        answers = selection.select_prompts(
            log_probs, calibration="none" if setting == "X" else "cbm", setting=setting
        ).predictions
        f1[setting] = [macro_f1(labels, row) for row in answers]
    effect = calibration_effect(f1["X"], f1["A"])
    counts, same_pick = COMMITTED[run, task]
    assert (effect["better"], effect["worse"], effect["same"]) == counts
    assert effect["mean_template_ratio_uncalibrated"] == committed["methods"]["mean template"]["X"]
    assert effect["mean_template_ratio_calibrated"] == committed["methods"]["mean template"]["A"]
    for method in selection.METHODS:
        picks = [
            selection.select_prompts(
                log_probs, method, calibration="none" if s == "X" else "cbm", setting=s, perplexity=perplexity
            ).instance_templates
            for s in ("X", "PA")
        ]
        assert np.array_equal(*picks) == (method in same_pick), method
