"""The MAUVE interval of the registered ``mauve`` metric: a percentile bootstrap over the examples, on features
computed once, seeded with the run's seed; its point estimate is ``mauve.compute_mauve``'s, called here
directly. Small Gaussian features keep each test to seconds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import CharTokenizer

from mi_decode.eval.kinds.base import EvalContext, TaskKind
from mi_decode.eval.metrics import MAUVE_MIN_TEXTS
from mi_decode.eval.metrics.mauve import MAUVE_RESAMPLES, mauve_interval, mauve_resamples
from mi_decode.eval.registry import METRICS, Metric

RESAMPLES = 100  # enough for stable ends on these cases, a second or two per interval


def gaussians(n: int, shift: float = 0.5, dimensions: int = 8, seed: int = 1):
    """Human and model features: the model's mean is ``shift`` away in every dimension."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dimensions)), rng.normal(size=(n, dimensions)) + shift


def direct_mauve(p, q) -> float:
    """The reference point estimate: mauve-text itself with mi_decode's settings (k-means seed 25)."""
    import mauve

    result = mauve.compute_mauve(
        p_features=np.asarray(p, np.float32),
        q_features=np.asarray(q, np.float32),
        device_id=-1,
        verbose=False,
    )
    return float(result.mauve)


class CountingFeatures:
    """Gaussian features looked up by text (references ``r<i>``, outputs ``o<i>``), counting the calls."""

    def __init__(self, n: int, shift: float = 0.5):
        self.p, self.q = gaussians(n, shift)
        self.calls: list[list[str]] = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return np.stack([(self.p if text[0] == "r" else self.q)[int(text[1:])] for text in texts])


def records(n: int) -> list[dict]:
    return [{"id": f"x{i}", "output": f"o{i}", "reference": f"r{i}"} for i in range(n)]


def summarize(n: int, *, seed: int = 0, resamples: int = RESAMPLES, features=None):
    features = features or CountingFeatures(n)
    ctx = SimpleNamespace(tokenizer=CharTokenizer, mauve_features=features, seed=seed)
    task = SimpleNamespace(max_new_tokens=8)
    return METRICS.get("mauve")(resamples=resamples).summarize(records(n), ctx, task), features


def test_the_interval_contains_the_point_estimate_which_is_mauve_texts_own():
    summary, features = summarize(64)
    assert summary["mauve"] == direct_mauve(features.p, features.q)
    assert 0.3 < summary["mauve"] < 0.7  # a realistic gap, neither identical nor disjoint
    interval = summary["intervals"]["mauve"]
    assert interval == {
        "low": interval["low"],
        "high": interval["high"],
        "n": 64,
        "seed": 0,
        "method": f"bootstrap over texts (features computed once), {RESAMPLES} resamples",
    }
    assert 0.0 < interval["low"] < summary["mauve"] < interval["high"] <= 1.0


def test_features_are_computed_once_per_side():
    summary, features = summarize(40)
    assert "intervals" in summary
    assert features.calls == [[f"r{i}" for i in range(40)], [f"o{i}" for i in range(40)]]


def test_the_interval_narrows_as_the_examples_grow():
    widths = {}
    for n in (64, 320):
        p, q = gaussians(n)
        low, high = mauve_interval(p, q, resamples=RESAMPLES, bootstrap_seed=0)
        widths[n] = high - low
    # Five times the examples: about half the width (0.62 -> 0.28 on these draws).
    assert widths[320] < 0.6 * widths[64], widths


def test_the_same_seed_gives_the_same_interval_another_seed_another():
    p, q = gaussians(48)
    first = mauve_interval(p, q, resamples=50, bootstrap_seed=0)
    assert mauve_interval(p, q, resamples=50, bootstrap_seed=0) == first
    assert mauve_interval(p, q, resamples=50, bootstrap_seed=1) != first
    summaries = [summarize(40, seed=seed)[0]["intervals"]["mauve"] for seed in (3, 3, 4)]
    assert summaries[0] == summaries[1] != summaries[2]
    assert [interval["seed"] for interval in summaries] == [3, 3, 4]


def test_resamples_draw_examples_with_both_their_rows():
    # Human and model rows of an example are drawn together: with q = p every resample scores P against P.
    p, _ = gaussians(40)
    assert (mauve_resamples(p, p.copy(), resamples=10, bootstrap_seed=0) == 1.0).all()
    with pytest.raises(ValueError, match="a row per example, got 40 and 39 rows"):
        mauve_resamples(p, p[:39], resamples=10)
    with pytest.raises(ValueError, match="resamples must be a positive integer, got 0"):
        mauve_resamples(p, p, resamples=0)
    with pytest.raises(ValueError, match=r"confidence must be a float in \(0, 1\), got 95"):
        mauve_interval(p, p, confidence=95)


def test_no_interval_where_mauve_is_undefined_or_resamples_is_0():
    features = CountingFeatures(MAUVE_MIN_TEXTS - 1)
    assert summarize(MAUVE_MIN_TEXTS - 1, features=features)[0] == {"mauve": None}
    assert features.calls == []
    nan_features = lambda texts: np.full((len(texts), 4), np.nan)  # noqa: E731
    assert summarize(MAUVE_MIN_TEXTS, features=nan_features)[0] == {"mauve": None}
    summary, _ = summarize(40, resamples=0)
    assert list(summary) == ["mauve"] and summary["mauve"] is not None
    assert METRICS.get("mauve")().resamples == MAUVE_RESAMPLES
    with pytest.raises(ValueError, match="resamples must be a non-negative integer"):
        METRICS.get("mauve")(resamples=-1)


class OtherInterval(Metric):
    """A metric with its own interval, listed before MAUVE."""

    name = "other"

    def summarize(self, records, ctx, task):
        return {"other": 1.0, "intervals": {"other": {"low": 0.5, "high": 1.5}}}


def test_the_task_summary_merges_the_metrics_intervals_and_seeds_them_with_the_run_seed():
    n = 40
    features = CountingFeatures(n)
    task = SimpleNamespace(
        max_new_tokens=8,
        metric_objects=lambda: [OtherInterval(), METRICS.get("mauve")(resamples=20)],
        baselines=(),
    )
    ctx = EvalContext(model=None, tokenizer=CharTokenizer, feature_extractor=features, backend=object())
    results = TaskKind().summarize_task(ctx, task, {"greedy": records(n)}, records(n), seed=7)
    summary = results["methods"]["greedy"]
    assert list(summary) == ["other", "intervals", "mauve", "n"]
    assert summary["intervals"]["other"] == {"low": 0.5, "high": 1.5}
    assert summary["intervals"]["mauve"]["seed"] == ctx.seed == 7
