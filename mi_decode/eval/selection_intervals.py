r"""Bootstrap intervals for prompt selection: the selected/oracle macro-F1 ratio (Yang et al. 2024) with the
selection rerun on every resample of the inputs.

A resample draws the X inputs with replacement, so input x appears ``w[x]`` times. Everything a selection
reads is a mean over inputs (CBM's marginal, GE, GE_M, LE, the ZLP/ZPM/ZMV agreement rates, the mean
perplexity), every per-input choice depends only on that input and those means, and macro-F1 counts inputs.
So the resample's selection is the full-data computation with those means and counts weighted by ``w``:
:func:`selection_resamples` computes a block of resamples as ``[B, T, X, Y]`` arrays instead of calling
:func:`mi_decode.selection.select_prompts` once per resample, and gives the same ratios (the tests check it
against that loop).

Shapes as in :mod:`mi_decode.selection`: ``log_probs`` ``[T, X, Y]``, ``perplexity`` ``[T, X]``, ``labels``
``[X]`` (class indices below Y), ``weights`` ``[R, X]`` (how often each input is drawn in each resample).

Example:

```python
>>> import numpy as np
>>> from mi_decode.eval.selection_intervals import selection_resamples
>>> rng = np.random.default_rng(0)
>>> log_probs, labels = np.log(rng.dirichlet([1, 1], size=(3, 20))), rng.integers(0, 2, 20)
>>> ones = np.ones((1, 20))  # the "resample" that draws every input once: the point estimate
>>> ratios = selection_resamples(log_probs, labels, ones, perplexity=rng.uniform(2, 9, (3, 20))).ratios
>>> sorted(ratios)[:3], ratios["mi"]["X"].shape
(['ge', 'ge_m', 'le'], (1,))

```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import selection

SETTINGS = selection.SETTINGS  # X: no calibration; A, P, PA: CBM on answers, prompt scores, both
REFERENCE_ROWS = ("mean template", "worst template")  # ratios of every template, beside the methods'
# Elements of one [B, T, X, Y] array per block of resamples: about 16 MB of float64 each.
_BLOCK_ELEMENTS = 2_000_000


@dataclass
class ResampledSelection:
    """Per resample, what a selection got.

    Attributes:
        ratios: row (a method of :data:`mi_decode.selection.METHODS`, ``"mean template"`` or ``"worst
            template"``) -> setting -> ``[R]`` selected (mean, worst) F1 over the oracle F1 of the same
            resample; NaN where that oracle F1 is 0.
        selected: task-wise method -> setting -> ``[R]`` index of the template it picked in each resample.
        oracle_f1: setting -> ``[R]`` the best template's macro-F1 in each resample.
    """

    ratios: dict[str, dict[str, np.ndarray]]
    selected: dict[str, dict[str, np.ndarray]]
    oracle_f1: dict[str, np.ndarray]


def resample_weights(num_inputs: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, num_inputs]``: how many times each input is drawn when ``num_inputs`` inputs are drawn
    with replacement, ``resamples`` times, from ``numpy.random.default_rng(seed)``.

    Example:
        >>> from mi_decode.eval.selection_intervals import resample_weights
        >>> weights = resample_weights(5, 3, seed=0)
        >>> weights.shape, weights.sum(axis=1).tolist()
        ((3, 5), [5.0, 5.0, 5.0])
    """
    if num_inputs < 1 or resamples < 1:
        raise ValueError(f"need at least 1 input and 1 resample, got {num_inputs} and {resamples}")
    indices = np.random.default_rng(seed).integers(0, num_inputs, size=(resamples, num_inputs))
    return indices_to_weights(indices, num_inputs)


def indices_to_weights(indices: np.ndarray, num_inputs: int) -> np.ndarray:
    """``[R, num_inputs]`` counts of each input in each row of ``indices`` ``[R, n]`` (drawn input indices).

    Example:
        >>> from mi_decode.eval.selection_intervals import indices_to_weights
        >>> indices_to_weights([[0, 0, 2]], 3).tolist()
        [[2.0, 0.0, 1.0]]
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2 or indices.size and (indices.min() < 0 or indices.max() >= num_inputs):
        raise ValueError(
            f"`indices` must be [R, n] input indices below {num_inputs}, got shape {indices.shape}"
        )
    rows = indices.shape[0]
    flat = (indices + num_inputs * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * num_inputs).reshape(rows, num_inputs).astype(np.float64)


def _weighted_sum(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``values`` ``[b, ..., X]`` (b = 1 or B) summed over X with ``weights`` ``[B, X]``: ``[B, ...]``."""
    middle = values.shape[1:-1]
    flat = values.reshape(values.shape[0], -1, values.shape[-1])  # [b, M, X]
    return (flat @ weights[:, :, None]).reshape(weights.shape[0], *middle)


def _weighted_mean_over_inputs(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``values`` ``[b, T, X, Y]`` averaged over X with ``weights`` ``[B, X]``: ``[B, T, Y]``."""
    summed = weights[:, None, None, :] @ values  # [B, T, 1, Y]
    return summed[:, :, 0, :] / weights.shape[1]


def weighted_macro_f1(
    labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray, num_classes: int
) -> np.ndarray:
    """Macro-F1 of ``predictions`` ``[b, ..., X]`` (b = 1 or B) in each resample ``weights`` ``[B, X]``:
    ``[B, ...]``. As :func:`mi_decode.rank.macro_f1` (sklearn's ``average="macro"``) on the resampled inputs:
    the mean of 2 TP / (predicted + actual) over the classes present in the resample's labels or predictions.

    Example:
        >>> import numpy as np
        >>> from mi_decode.eval.selection_intervals import weighted_macro_f1
        >>> f1 = weighted_macro_f1(np.array([0, 0, 1, 1]), np.array([[0, 1, 1, 1]]), np.ones((1, 4)), 2)
        >>> round(float(f1[0]), 4)  # F1 2/3 for class 0, 4/5 for class 1
        0.7333
    """
    labels = np.asarray(labels)
    total = np.zeros((weights.shape[0], *predictions.shape[1:-1]))
    present = np.zeros_like(total)
    for label in range(num_classes):
        is_label = (labels == label).astype(np.float64)
        actual = weights @ is_label  # [B]
        actual = actual.reshape(-1, *([1] * (total.ndim - 1)))
        predicted_mask = (predictions == label).astype(np.float64)
        predicted = _weighted_sum(predicted_mask, weights)
        true_positive = _weighted_sum(predicted_mask * is_label, weights)
        denominator = predicted + actual
        total += 2 * true_positive / np.where(denominator > 0, denominator, 1.0)  # 0 where absent
        present += denominator > 0
    return total / present


def _scores(score_probs: np.ndarray, perplexity: np.ndarray | None, weights: np.ndarray):
    """Task-wise scores ``{method: [B, T]}`` and instance-wise choices ``{method: [b, X]}`` from the
    probabilities the selection reads, ``[b, T, X, Y]``, on the resamples ``weights``."""
    num_inputs = weights.shape[1]
    num_choices = score_probs.shape[-1]
    per_input_entropy = selection.entropy(score_probs)  # [b, T, X]
    answers = score_probs.argmax(axis=-1)  # [b, T, X]
    one_hot = (answers[..., None] == np.arange(num_choices)).astype(np.float64)
    ge_m = selection.entropy(_weighted_mean_over_inputs(score_probs, weights))  # [B, T]
    ge = selection.entropy(_weighted_mean_over_inputs(one_hot, weights))
    le = _weighted_sum(per_input_entropy, weights) / num_inputs

    def agreement(ensemble: np.ndarray) -> np.ndarray:  # ensemble [b, X, Y] -> [B, T]
        agree = (answers == ensemble.argmax(axis=-1)[:, None, :]).astype(np.float64)
        return _weighted_sum(agree, weights) / num_inputs

    tiny = np.finfo(np.float64).tiny
    task_wise = {
        "mi": ge_m - le,
        "mi_ag": ge - le,
        "ge": ge,
        "ge_m": ge_m,
        "le": le,
        "mdl_m": -le,
        "zlp": agreement(np.log(np.maximum(score_probs, tiny)).mean(axis=1)),
        "zpm": agreement(score_probs.mean(axis=1)),
        "zmv": agreement(one_hot.sum(axis=1)),
    }
    # argmax over the templates axis: the first best template, as select_prompts.
    instance_wise = {
        "mi_al": (ge_m[:, :, None] - per_input_entropy).argmax(axis=1),
        "mi_agl": (ge[:, :, None] - per_input_entropy).argmax(axis=1),
        "mdl": (-per_input_entropy).argmax(axis=1),
    }
    if perplexity is not None:
        task_wise["ppl"] = -_weighted_sum(perplexity[None], weights) / num_inputs
        instance_wise["ppl_l"] = (-perplexity).argmax(axis=0)[None]
    return task_wise, instance_wise


def _block(log_probs, labels, perplexity, weights, methods, settings):
    """Ratios, picks and oracle F1 of one block of resamples: ``{(row, setting): [B]}`` and the like."""
    num_choices = log_probs.shape[-1]
    plain = selection.answer_probs(log_probs)[None]  # [1, T, X, Y]
    raw_predictions = log_probs.argmax(axis=-1)[None]  # [1, T, X]
    cbm = plain / _weighted_mean_over_inputs(plain, weights)[:, :, None, :]  # CBM's q, [B, T, X, Y]
    calibrated = {"probs": selection.answer_probs(cbm), "predictions": cbm.argmax(axis=-1)}  # norm="softmax"
    scores_by_probs = {}
    ratios, selected, oracle_f1 = {}, {}, {}
    for setting in settings:
        probs_key = "calibrated" if setting in ("P", "PA") else "plain"
        if probs_key not in scores_by_probs:
            probs = calibrated["probs"] if probs_key == "calibrated" else plain
            scores_by_probs[probs_key] = _scores(probs, perplexity, weights)
        task_wise, instance_wise = scores_by_probs[probs_key]
        predictions = calibrated["predictions"] if setting in ("A", "PA") else raw_predictions
        template_f1 = weighted_macro_f1(labels, predictions, weights, num_choices)  # [B, T]
        oracle = template_f1.max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            for method in methods:
                if method in task_wise:
                    pick = task_wise[method].argmax(axis=1)  # [B]
                    selected[method, setting] = pick
                    chosen_f1 = np.take_along_axis(template_f1, pick[:, None], axis=1)[:, 0]
                else:
                    chosen = np.broadcast_to(instance_wise[method], weights.shape)  # [B, X]
                    answers = np.broadcast_to(predictions, (len(weights), *predictions.shape[1:]))
                    answers = np.take_along_axis(answers, chosen[:, None, :], axis=1)  # [B, 1, X]
                    chosen_f1 = weighted_macro_f1(labels, answers, weights, num_choices)[:, 0]
                ratios[method, setting] = np.where(oracle > 0, chosen_f1 / oracle, np.nan)
            ratios["mean template", setting] = np.where(oracle > 0, template_f1.mean(axis=1) / oracle, np.nan)
            ratios["worst template", setting] = np.where(oracle > 0, template_f1.min(axis=1) / oracle, np.nan)
        oracle_f1[setting] = oracle
    return ratios, selected, oracle_f1


def selection_resamples(
    log_probs: np.ndarray,
    labels: Sequence[int],
    weights: np.ndarray,
    perplexity: np.ndarray | None = None,
    methods: Sequence[str] = selection.METHODS,
    settings: Sequence[str] = SETTINGS,
) -> ResampledSelection:
    """Every selection method in every setting (X; A, P, PA with CBM, ``norm="softmax"``), rerun on each
    resample ``weights`` ``[R, X]`` of the inputs: the selected template's macro-F1 over the oracle's on
    that resample, as ``select_prompts`` and ``macro_f1`` would give on the resampled inputs. ``perplexity``
    is needed by ``ppl`` and ``ppl_l``. A row of ones is the full data, the point estimate.

    Raises:
        ValueError: shapes that do not match, a label outside the answer choices, or a method that needs
            ``perplexity`` without it.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    labels = np.asarray(labels)
    weights = np.asarray(weights, dtype=np.float64)
    if log_probs.ndim != 3 or 0 in log_probs.shape:
        raise ValueError(f"`log_probs` must be a non-empty [T, X, Y] array, got shape {log_probs.shape}")
    num_templates, num_inputs, num_choices = log_probs.shape
    if labels.shape != (num_inputs,) or labels.min() < 0 or labels.max() >= num_choices:
        raise ValueError(f"`labels` must be {num_inputs} class indices below {num_choices}, got {labels!r}")
    if weights.ndim != 2 or weights.shape[1] != num_inputs:
        raise ValueError(f"`weights` must have shape [R, {num_inputs}], got {weights.shape}")
    methods = [selection.normalize_method(method) for method in methods]
    settings = [selection.normalize_setting(setting) for setting in settings]
    if perplexity is not None:
        perplexity = np.asarray(perplexity, dtype=np.float64)
        if perplexity.shape != (num_templates, num_inputs):
            raise ValueError(
                f"`perplexity` must have shape {(num_templates, num_inputs)}, got {perplexity.shape}"
            )
    elif any(method in selection.PERPLEXITY_METHODS for method in methods):
        raise ValueError("methods ppl and ppl_l need `perplexity`")
    block = max(1, _BLOCK_ELEMENTS // (num_templates * num_inputs * num_choices))
    parts = [
        _block(log_probs, labels, perplexity, weights[start : start + block], methods, settings)
        for start in range(0, len(weights), block)
    ]
    ratios: dict[str, dict[str, np.ndarray]] = {}
    for row, setting in parts[0][0]:
        ratios.setdefault(row, {})[setting] = np.concatenate([part[0][row, setting] for part in parts])
    selected: dict[str, dict[str, np.ndarray]] = {}
    for method, setting in parts[0][1]:
        selected.setdefault(method, {})[setting] = np.concatenate(
            [part[1][method, setting] for part in parts]
        )
    oracle_f1 = {setting: np.concatenate([part[2][setting] for part in parts]) for setting in settings}
    return ResampledSelection(ratios=ratios, selected=selected, oracle_f1=oracle_f1)


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
    """The percentile bootstrap interval of ``values`` (NaN resamples left out); None if none is finite.

    Example:
        >>> import numpy as np
        >>> from mi_decode.eval.selection_intervals import percentile_interval
        >>> percentile_interval(np.arange(201.0))  # the 2.5th and 97.5th percentiles of 0, 1, ..., 200
        (5.0, 195.0)
        >>> percentile_interval(np.array([np.nan, np.nan])) is None
        True
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    tail = round((1.0 - confidence) * 50, 12)  # 2.5, not 1 - 0.95's 2.5000000000000022
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def selection_intervals(
    log_probs: np.ndarray,
    labels: Sequence[int],
    perplexity: np.ndarray | None = None,
    *,
    resamples: int,
    seed: int,
    methods: Sequence[str] = selection.METHODS,
    settings: Sequence[str] = SETTINGS,
    confidence: float = 0.95,
) -> dict[str, dict[str, dict]]:
    """95% percentile bootstrap intervals over inputs of every method's selected/oracle ratio and of the
    mean- and worst-template ratios, the selection rerun in each of ``resamples`` resamples drawn from
    ``numpy.random.default_rng(seed)``: row -> setting -> ``{"low", "high", "n", "seed", "method"}``, n the
    number of inputs. A cell whose resamples all have an oracle F1 of 0 gets no interval.

    Example:

    ```python
    >>> import numpy as np
    >>> from mi_decode.eval.selection_intervals import selection_intervals
    >>> rng = np.random.default_rng(0)
    >>> log_probs, labels = np.log(rng.dirichlet([1, 1], size=(3, 20))), rng.integers(0, 2, 20)
    >>> found = selection_intervals(log_probs, labels, resamples=200, seed=0, methods=["mi"])
    >>> cell = found["mi"]["PA"]
    >>> cell["low"] <= cell["high"], cell["n"], cell["method"]
    (True, 20, 'bootstrap over inputs, selection rerun in each resample, 200 resamples')

    ```
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    weights = resample_weights(log_probs.shape[1], resamples, seed)
    resampled = selection_resamples(log_probs, labels, weights, perplexity, methods, settings)
    description = f"bootstrap over inputs, selection rerun in each resample, {resamples} resamples"
    intervals: dict[str, dict[str, dict]] = {}
    for row, by_setting in resampled.ratios.items():
        for setting, values in by_setting.items():
            bounds = percentile_interval(values, confidence)
            if bounds is not None:
                intervals.setdefault(row, {})[setting] = {
                    "low": bounds[0],
                    "high": bounds[1],
                    "n": int(log_probs.shape[1]),
                    "seed": int(seed),
                    "method": description,
                }
    return intervals
