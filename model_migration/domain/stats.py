"""Paired bootstrap statistics for the evaluation gate, on plain numpy arrays.

The gate (``gate.py``) turns examples into arrays and decisions; this module only computes.
Arrays are metrics × examples (or metrics × resamples), float64 throughout.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Resamples drawn per chunk. 1,000 × 5,000 examples is 40 MB of int64 indices, where all
#: 10,000 resamples at once would be 400 MB. The chunk size never changes the result: numpy's
#: Generator draws the same integer stream whether it is asked for it in one call or several.
RESAMPLE_CHUNK = 1000


def bootstrap_means(diffs: FloatArray, resamples: int, seed: int, *, chunk: int = RESAMPLE_CHUNK) -> FloatArray:
    """Means of each row of ``diffs`` (metrics × examples) over paired resamples: metrics × resamples.

    Every metric sees the same resample indices, so the metrics' intervals and p-values describe
    the same bootstrap world and Holm's adjustment compares like with like.
    """
    k, n = diffs.shape
    if n == 0:
        raise ValueError("no examples to resample")
    rng = np.random.default_rng(seed)
    by_example = np.ascontiguousarray(diffs.T)
    out = np.empty((k, resamples), dtype=np.float64)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        # Counting how often each example is drawn turns k gathers of size × n into one
        # bincount and one BLAS product: about twice as fast with five metrics.
        idx += (np.arange(size, dtype=np.int64) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=size * n).reshape(size, n)
        out[:, start : start + size] = (counts.astype(np.float64) @ by_example).T
    out /= n
    return out


def percentile_interval(means: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    """Two-sided percentile interval per row, as ``scipy.stats.bootstrap(method="percentile")``."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [100.0 * tail, 100.0 * (1.0 - tail)], axis=1)
    return low, high


def p_non_inferior(means: FloatArray, margins: FloatArray) -> FloatArray:
    """One-sided bootstrap p-value per row for H0: Δ ≤ −margin.

    The share of resampled means at or below −margin, with the +1 correction so that a
    p-value is never 0 on a finite number of resamples. It is the dual of the percentile
    interval: the lower bound of a 1 − 2a interval is above −margin when p is under about a.
    """
    below = np.count_nonzero(means <= -margins[:, None], axis=1)
    resamples = means.shape[1]
    p: FloatArray = (below + 1.0) / (resamples + 1.0)
    return p


def holm(p: FloatArray) -> FloatArray:
    """Holm–Bonferroni adjusted p-values, in the input's order.

    The i-th smallest p is multiplied by (k − i + 1), capped at 1, and made non-decreasing
    so that a hypothesis is never rejected after a smaller one was kept.
    """
    k = p.shape[0]
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (k - np.arange(k)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def p95(values: FloatArray) -> float:
    """The 95th percentile, numpy's default (linear) interpolation."""
    return float(np.percentile(values, 95.0))
