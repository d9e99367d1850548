"""Selection methods: the reference reproduction (OPT-2.7B on SST-2), closed-form values and properties."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mi_decode.selection import (
    answer_probs,
    calibrate,
    calibrate_cbm,
    calibrate_cc,
    calibrate_pmi_dc,
    entropy,
    ge_m_score,
    ge_score,
    le_score,
    mi_ag_score,
    mi_score,
    select_prompts,
    zmv_score,
    zpm_score,
)

REFERENCE = "prompt_selection/reference/sst2_opt2.7b"

# The README's reference figures: method -> setting -> (selected prompt, macro-F1).
README_TABLE = {
    "mi": {"X": ("prompt_02", 0.5001), "PA": ("prompt_02", 0.9183)},
    "mi_ag": {"X": ("prompt_05", 0.8661), "PA": ("prompt_02", 0.9183)},
    "ge": {"X": ("prompt_31", 0.7695), "PA": ("prompt_24", 0.6353)},
    "ge_m": {"X": ("prompt_70", 0.7430), "PA": ("prompt_44", 0.7569)},
    "mdl_m": {"X": ("prompt_33", 0.3292), "PA": ("prompt_02", 0.9183)},
}


@pytest.fixture(scope="module")
def reference(data_dir):
    with gzip.open(data_dir / REFERENCE / "sst2_validation_opt-2.7b_100prompts_logprobs.json.gz", "rt") as f:
        run = json.load(f)
    names = sorted(run["prompts"])
    prompts = [run["prompts"][name] for name in names]
    log_probs = np.stack([np.asarray(p["log_prob"]) for p in prompts])
    content_free = np.stack(
        [np.concatenate([np.asarray(p[key]) for key in ("empty_log", "na_log", "mask_log")]) for p in prompts]
    )
    perplexity = np.stack([1.0 / np.asarray(p["P(x,t)"]) for p in prompts])
    with open(data_dir / REFERENCE / "reference_MI_cbm_softmax_selection_result.json") as f:
        result = json.load(f)
    return names, log_probs, content_free, perplexity, np.asarray(run["targets"]), result


def macro_f1(targets, predictions):
    from sklearn.metrics import f1_score

    return f1_score(targets, predictions, average="macro")


@pytest.mark.parametrize("setting", ["X", "A", "P", "PA"])
def test_reproduces_reference_mi_cbm_result_file(reference, setting):
    names, log_probs, _, _, targets, result = reference
    selection = select_prompts(log_probs, "mi", "cbm", setting)
    expected = result[setting]
    assert names[selection.selected] == expected["prompt"]
    assert selection.selected_predictions.tolist() == expected["prediction"]
    assert targets.tolist() == expected["target"]
    assert macro_f1(targets, selection.selected_predictions) == pytest.approx(expected["macro_f1"], abs=1e-12)


@pytest.mark.parametrize("method", sorted(README_TABLE))
@pytest.mark.parametrize("setting", ["X", "PA"])
def test_reproduces_readme_table(reference, method, setting):
    names, log_probs, _, _, targets, _ = reference
    selection = select_prompts(log_probs, method, "cbm", setting)
    prompt, f1 = README_TABLE[method][setting]
    assert names[selection.selected] == prompt
    assert macro_f1(targets, selection.selected_predictions) == pytest.approx(f1, abs=5e-5)


def test_reference_oracles(reference):
    names, log_probs, _, _, targets, _ = reference
    for setting, (prompt, f1) in {"X": ("prompt_05", 0.8661), "A": ("prompt_02", 0.9183)}.items():
        predictions = select_prompts(log_probs, "mi", "cbm", setting).predictions
        f1s = [macro_f1(targets, p) for p in predictions]
        assert names[int(np.argmax(f1s))] == prompt
        assert max(f1s) == pytest.approx(f1, abs=5e-5)


def test_ppl_selects_lowest_mean_perplexity(reference):
    names, log_probs, _, perplexity, _, _ = reference
    selection = select_prompts(log_probs, "ppl", perplexity=perplexity)
    assert names[selection.selected] == names[int(np.argmin(perplexity.mean(axis=1)))]
    assert selection.template_scores[selection.selected] == pytest.approx(-perplexity.mean(axis=1).min())


def test_closed_form_values():
    # Two inputs, two choices: a template that separates the inputs perfectly has MI = log 2.
    separating = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    uniform = np.full((1, 2, 2), 0.5)
    assert mi_score(separating)[0] == pytest.approx(math.log(2))
    assert mi_score(uniform)[0] == pytest.approx(0.0)
    assert le_score(uniform)[0] == pytest.approx(math.log(2))
    # Confident in choice 0 for both inputs: GE = 0, GE_M = H(0.8, 0.2).
    biased = np.array([[[0.9, 0.1], [0.7, 0.3]]])
    h = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    assert ge_score(biased)[0] == pytest.approx(0.0)
    assert ge_m_score(biased)[0] == pytest.approx(h)
    local = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1) + 0.7 * math.log(0.7) + 0.3 * math.log(0.3)) / 2
    assert le_score(biased)[0] == pytest.approx(local)
    assert mi_ag_score(biased)[0] == pytest.approx(-local)


def test_cbm_by_hand():
    probs = np.array([[0.9, 0.1], [0.7, 0.3]])
    calibrated, scores = calibrate_cbm(probs, norm="sum")
    # mean over inputs: (0.8, 0.2) -> q = (1.125, 0.5), (0.875, 1.5)
    np.testing.assert_allclose(scores, [[1.125, 0.5], [0.875, 1.5]])
    np.testing.assert_allclose(calibrated, [[1.125 / 1.625, 0.5 / 1.625], [0.875 / 2.375, 1.5 / 2.375]])
    softmaxed, _ = calibrate_cbm(probs)
    np.testing.assert_allclose(softmaxed[0], np.exp([1.125, 0.5]) / np.exp([1.125, 0.5]).sum())


def test_cc_and_pmi_by_hand():
    log_probs = np.log([[0.6, 0.2]])
    content_free = np.log([[0.5, 0.1], [0.3, 0.1]])  # mean (0.4, 0.1) -> normalised (0.8, 0.2)
    _, scores = calibrate_cc(log_probs, content_free, norm="sum")
    np.testing.assert_allclose(scores, [[0.75 / 0.8, 0.25 / 0.2]])
    _, pmi = calibrate_pmi_dc(log_probs, content_free[:1])
    np.testing.assert_allclose(pmi, [[math.log(0.6 / 0.5), math.log(0.2 / 0.1)]])


def test_zero_shot_agreement_methods():
    # Three templates, one input: two vote for choice 0 (one weakly), one strongly for choice 1.
    probs = np.array([[[0.55, 0.45]], [[0.55, 0.45]], [[0.01, 0.99]]])
    assert zmv_score(probs).tolist() == [1.0, 1.0, 0.0]  # majority: choice 0
    assert zpm_score(probs).tolist() == [0.0, 0.0, 1.0]  # mean probability: (0.37, 0.63)


def test_instance_wise_selection():
    # Input 0 is best handled by template 0 (confident), input 1 by template 1.
    probs = np.log([[[0.99, 0.01], [0.5, 0.5]], [[0.5, 0.5], [0.02, 0.98]]])
    selection = select_prompts(probs, "mdl", setting="X")
    assert selection.instance_templates.tolist() == [0, 1]
    assert selection.selected_predictions.tolist() == [0, 1]
    assert selection.template_scores.tolist() == [0.5, 0.5]
    perplexity = np.array([[3.0, 1.0], [2.0, 5.0]])
    assert select_prompts(probs, "ppl_l", perplexity=perplexity).instance_templates.tolist() == [1, 0]


def _joint_mutual_information(probs: np.ndarray) -> float:
    """I(X; Y) from the joint p(x, y) = p(y|x) / X, computed independently of the entropy decomposition."""
    joint = probs / probs.shape[0]
    marginal_y = joint.sum(axis=0, keepdims=True)
    marginal_x = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / (marginal_x * marginal_y)), 0.0)
    return float(terms.sum())


log_prob_arrays = st.integers(1, 4).flatmap(
    lambda t: st.integers(1, 6).flatmap(
        lambda x: st.integers(2, 4).flatmap(
            lambda y: arrays(np.float64, (t, x, y), elements=st.floats(-20, 0, allow_nan=False))
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(log_prob_arrays)
def test_mi_is_the_mutual_information(log_probs):
    probs = answer_probs(log_probs)
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    for t in range(probs.shape[0]):
        assert mi_score(probs)[t] == pytest.approx(_joint_mutual_information(probs[t]), abs=1e-9)
    assert np.all(mi_score(probs) >= -1e-12)
    assert np.all(mi_score(probs) <= math.log(probs.shape[-1]) + 1e-12)


@settings(max_examples=60, deadline=None)
@given(log_prob_arrays, st.sampled_from(["mi", "mi_ag", "ge", "ge_m", "le", "mdl_m", "zlp", "zpm", "zmv"]))
def test_task_wise_selection_is_the_best_score(log_probs, method):
    selection = select_prompts(log_probs, method, "cbm", "PA")
    assert selection.template_scores[selection.selected] == selection.template_scores.max()
    assert sorted(selection.ranking.tolist()) == list(range(log_probs.shape[0]))
    assert np.all(np.diff(selection.template_scores[selection.ranking]) <= 0)
    assert selection.predictions.shape == log_probs.shape[:2]


@settings(max_examples=60, deadline=None)
@given(log_prob_arrays, arrays(np.float64, 4, elements=st.floats(-5, 5)))
def test_pmi_dc_ignores_a_per_choice_bias(log_probs, bias):
    # A prior that shifts every log-prob of a choice, content-free inputs included, cancels in PMI_DC.
    bias = bias[: log_probs.shape[-1]]
    content_free = log_probs[:, :1, :] - 1.0
    base = calibrate(log_probs, "pmi_dc", content_free_log_probs=content_free)[1]
    shifted = calibrate(log_probs + bias, "pmi_dc", content_free_log_probs=content_free + bias)[1]
    np.testing.assert_allclose(base, shifted, atol=1e-9)


def test_entropy_handles_zero_probabilities():
    assert entropy([1.0, 0.0]) == 0.0
    assert entropy([0.25] * 4) == pytest.approx(math.log(4))


def test_argument_validation():
    log_probs = np.zeros((2, 3, 2))
    with pytest.raises(ValueError, match="unknown method"):
        select_prompts(log_probs, "entropy")
    with pytest.raises(ValueError, match="unknown calibration"):
        select_prompts(log_probs, calibration="platt")
    with pytest.raises(ValueError, match="setting"):
        select_prompts(log_probs, setting="Q")
    with pytest.raises(ValueError, match="needs `perplexity`"):
        select_prompts(log_probs, "ppl")
    with pytest.raises(ValueError, match="needs `content_free_log_probs`"):
        select_prompts(log_probs, calibration="cc")
    with pytest.raises(ValueError, match="3 dimensions"):
        select_prompts(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        select_prompts(np.full((1, 2, 2), np.nan))
    with pytest.raises(ValueError, match="norm"):
        select_prompts(log_probs, norm="max")
    assert select_prompts(log_probs, "MI_A").method == "mi"
