"""Scores computed by gedrag itself: retrieval metrics against the suite's relevant document
ids, refusals, latency percentiles, and the paired bootstrap used by the promotion gate.

RAGAS metrics are in :mod:`evaluation.ragas_metrics` and are always RAGAS's own code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


def dedupe(ids: Sequence[str]) -> list[str]:
    """Document ids in first-seen order (several chunks of one document count once)."""
    seen: dict[str, None] = {}
    for i in ids:
        seen.setdefault(i, None)
    return list(seen)


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    return next((1 / (i + 1) for i, d in enumerate(ranked[:k]) if d in relevant), 0.0)


def retrieval_scores(ranked_docs: Sequence[str], relevant: Sequence[str]) -> dict[str, float]:
    """nDCG@10, Recall@k (k = the passages the release retrieves) and MRR@10 of one question."""
    ranked = dedupe(ranked_docs)
    rel = set(relevant)
    return {
        "ndcg@10": ndcg_at(ranked, rel),
        "recall@k": recall_at(ranked, rel, len(ranked) or 1),
        "mrr": mrr(ranked, rel),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class PairedDiff:
    """Mean of per-question differences (candidate - baseline) and its bootstrap CI."""

    n: int
    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean, "ci_low": self.low, "ci_high": self.high}


def paired_bootstrap(
    diffs: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> PairedDiff:
    """Percentile bootstrap CI of the mean paired difference; seeded, so deterministic."""
    n = len(diffs)
    if n == 0:
        return PairedDiff(0, 0.0, 0.0, 0.0)
    rng = random.Random(seed)  # noqa: S311 - resampling, not security
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[int(tail * (resamples - 1))]
    high = means[math.ceil((1 - tail) * (resamples - 1))]
    return PairedDiff(n, round(sum(diffs) / n, 6), round(low, 6), round(high, 6))
