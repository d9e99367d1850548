"""Comparing two methods on the same examples: the mean paired difference with a bootstrap confidence
interval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .text import _check_same_length

BOOTSTRAP_RESAMPLES = 10_000


def paired_difference(
    method: Sequence[float], baseline: Sequence[float], *, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """The mean of ``method[i] - baseline[i]`` over examples scored by both, with a percentile bootstrap
    confidence interval over examples (``scipy.stats.bootstrap``, 10,000 resamples, seeded). Pairing
    removes the between-example variance, so the interval is much narrower than comparing two separate
    intervals; if it contains 0 the sample does not show a difference.

    Returns ``{"difference", "low", "high", "n"}``.

    Raises:
        ValueError: different lengths, fewer than 2 examples, or a confidence outside (0, 1).

    Example:

    ```python
    >>> from mi_decode.eval.metrics.stats import paired_difference
    >>> result = paired_difference([1, 1, 0, 1, 1, 1], [0, 1, 0, 1, 0, 1])
    >>> round(result["difference"], 3), result["n"], result["low"] >= 0.0
    (0.333, 6, True)

    ```
    """
    from scipy.stats import bootstrap

    _check_same_length(method, baseline, "method and baseline")
    if len(method) < 2:
        raise ValueError(f"need at least 2 paired examples, got {len(method)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    differences = np.asarray(method, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    mean = float(differences.mean())
    if np.all(differences == differences[0]):  # every resample has the same mean
        return {"difference": mean, "low": mean, "high": mean, "n": len(differences)}
    interval = bootstrap(
        (differences,),
        np.mean,
        confidence_level=confidence,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return {
        "difference": mean,
        "low": float(interval.low),
        "high": float(interval.high),
        "n": len(differences),
    }
