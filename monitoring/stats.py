"""Two-sample statistics of the drift reports and the online A/B: each answers "did this
change?" with a size (MMD², PSI, a rate's difference, a p95 ratio) and a p-value, so that a
threshold is crossed only by a change that is both large and unlikely to be noise.

Everything is seeded: the same samples give the same p-values.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evaluation.metrics import PairedDiff, percentile

Values = Sequence[float] | np.ndarray

# Smallest share given to an empty bin in a PSI (its log would be infinite): a bin empty on one
# side and holding 1 % on the other adds ~0.05, not infinity.
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class TestResult:
    """A statistic of the change between two samples and the p-value of "no change"."""

    statistic: float
    p_value: float


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 500, seed: int = 0) -> TestResult:
    """Maximum mean discrepancy between two samples of vectors (rows): the unbiased MMD²
    with a Gaussian kernel whose width is the median pairwise squared distance of the pooled
    samples, and its permutation p-value ((1 + permutations at least as large) /
    (1 + permutations)). Permutations relabel the pooled rows, so the test holds its level
    whatever the distribution of the vectors."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("each sample needs at least two vectors")
    z = np.vstack([x, y]).astype(np.float64)
    sq = np.einsum("ij,ij->i", z, z)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    width = float(np.median(dist[np.triu_indices(n + m, 1)])) or 1.0
    kernel = np.exp(-dist / width)
    rng = np.random.default_rng(seed)
    labels = np.zeros((permutations + 1, n + m), dtype=bool)
    labels[:, :n] = True
    for row in labels[1:]:
        rng.shuffle(row)
    stats = _mmd2(kernel, labels, n, m)
    observed = float(stats[0])
    at_least = int(np.sum(stats[1:] >= observed - 1e-12))
    return TestResult(observed, (1 + at_least) / (1 + permutations))


def _mmd2(kernel: np.ndarray, labels: np.ndarray, n: int, m: int) -> np.ndarray:
    """Unbiased MMD² for each labelling (rows of ``labels``: True = first sample), at once.
    The kernel's diagonal is 1 (Gaussian), removed from the within-sample sums."""
    a = labels.astype(np.float64)
    b = 1.0 - a
    ka = kernel @ a.T  # (N, P)
    kb = kernel @ b.T
    xx = np.einsum("pi,ip->p", a, ka) - n
    yy = np.einsum("pi,ip->p", b, kb) - m
    xy = np.einsum("pi,ip->p", a, kb)
    result: np.ndarray = xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)
    return result


def psi(expected: Values, actual: Values) -> float:
    """Population stability index of two distributions over the same bins (shares or
    counts): Σ (a − e) · ln(a / e), empty bins floored at :data:`PSI_FLOOR`."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("two non-empty distributions over the same bins")
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def quantile_edges(reference: Values, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (ties merged): each bin holds about the
    same share of the reference."""
    qs = np.quantile(np.asarray(reference, dtype=np.float64), np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def binned(values: Values, edges: np.ndarray) -> np.ndarray:
    counts: np.ndarray = np.bincount(
        np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right"),
        minlength=len(edges) + 1,
    )
    return counts


def psi_test(
    reference: Sequence[float],
    current: Sequence[float],
    *,
    bins: int = 10,
    permutations: int = 500,
    seed: int = 0,
) -> TestResult:
    """PSI of ``current`` against ``reference`` over the reference's deciles, with a
    permutation p-value. The p-value matters: two samples of 100 from one distribution already
    score ~0.1-0.2 (about (bins − 1)·(1/n + 1/m)), near the usual 0.25 cut."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        edges = quantile_edges(a, bins)
        return psi(binned(a, edges), binned(b, edges))

    return permutation_test(ref, cur, stat, permutations=permutations, seed=seed)


def categorical_psi_test(
    reference: Sequence[str],
    current: Sequence[str],
    *,
    permutations: int = 500,
    seed: int = 0,
) -> TestResult:
    """PSI of the category shares (languages, media types) with a permutation p-value."""
    categories = sorted(set(reference) | set(current))
    index = {c: i for i, c in enumerate(categories)}
    ref = np.array([index[c] for c in reference], dtype=np.float64)
    cur = np.array([index[c] for c in current], dtype=np.float64)

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        size = len(categories)
        return psi(
            np.bincount(a.astype(int), minlength=size), np.bincount(b.astype(int), minlength=size)
        )

    return permutation_test(ref, cur, stat, permutations=permutations, seed=seed)


def permutation_test(
    a: np.ndarray,
    b: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    *,
    permutations: int = 500,
    seed: int = 0,
) -> TestResult:
    """p-value of ``statistic(a, b)`` (larger = more different) under relabelling."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("two non-empty samples")
    observed = statistic(a, b)
    pooled = np.concatenate([a, b])
    rng = np.random.default_rng(seed)
    at_least = 0
    for _ in range(permutations):
        rng.shuffle(pooled)
        if statistic(pooled[: len(a)], pooled[len(a) :]) >= observed - 1e-12:
            at_least += 1
    return TestResult(observed, (1 + at_least) / (1 + permutations))


def two_proportions(hits_a: int, n_a: int, hits_b: int, n_b: int) -> TestResult:
    """Difference of two rates (b − a) and the two-sided p-value of the pooled z-test."""
    if n_a == 0 or n_b == 0:
        raise ValueError("two non-empty samples")
    pa, pb = hits_a / n_a, hits_b / n_b
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return TestResult(pb - pa, 1.0)
    return TestResult(pb - pa, math.erfc(abs(pb - pa) / se / math.sqrt(2)))


def p95_ratio_test(
    reference: Sequence[float], current: Sequence[float], *, permutations: int = 500, seed: int = 0
) -> TestResult:
    """Ratio of the p95s (current / reference) and the permutation p-value of a rise."""

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        base = percentile(list(a), 95)
        return percentile(list(b), 95) / base if base > 0 else math.inf

    return permutation_test(
        np.asarray(reference, dtype=np.float64),
        np.asarray(current, dtype=np.float64),
        stat,
        permutations=permutations,
        seed=seed,
    )


def shares(values: Sequence[str]) -> dict[str, float]:
    """Each category's share, largest first."""
    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in counts.most_common()}


def unpaired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    statistic: Literal["mean", "p95"] = "mean",
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    max_size: int = 5000,
) -> PairedDiff:
    """``statistic(b) − statistic(a)`` and its percentile bootstrap interval, each sample
    resampled on its own (two arms answered different questions): the promotion gate's
    interval (:func:`evaluation.metrics.paired_bootstrap`) for unpaired samples. Samples
    larger than ``max_size`` keep their last values (the newest traces)."""
    if not a or not b:
        return PairedDiff(0, 0.0, 0.0, 0.0)
    xa = np.asarray(a[-max_size:], dtype=np.float64)
    xb = np.asarray(b[-max_size:], dtype=np.float64)
    rng = np.random.default_rng(seed)

    def stat(values: np.ndarray) -> np.ndarray:
        if statistic == "mean":
            return np.asarray(values.mean(axis=-1))
        # "inverted_cdf" is the nearest-rank percentile of evaluation.metrics.percentile.
        return np.asarray(np.percentile(values, 95, axis=-1, method="inverted_cdf"))

    parts = []
    for done in range(0, resamples, 200):  # 200 resamples at a time: <= 8 MB per arm
        rows = min(200, resamples - done)
        parts.append(
            stat(xb[rng.integers(0, len(xb), (rows, len(xb)))])
            - stat(xa[rng.integers(0, len(xa), (rows, len(xa)))])
        )
    diffs = np.sort(np.concatenate(parts))
    tail = (1 - confidence) / 2
    low = float(diffs[int(tail * (resamples - 1))])
    high = float(diffs[math.ceil((1 - tail) * (resamples - 1))])
    mean = float(stat(xb) - stat(xa))
    return PairedDiff(min(len(xa), len(xb)), round(mean, 6), round(low, 6), round(high, 6))
