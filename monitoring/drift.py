"""Drift reports: the last window of production against a reference window (the days before
it) and against the production release's evaluation suite.

Each check says how much something changed and whether that is more than noise:

=======================  ===========================================  ======================
check                    statistic                                    crossed when
=======================  ===========================================  ======================
questions                MMD² of the question embeddings, p-value     p < alpha
                         by permutation
language                 PSI of the question languages, p-value      PSI > max_psi, p < alpha
top_score                PSI of the best dense similarity, deciles    PSI > max_psi, p < alpha
refusal_rate             difference of the refusal rates, z-test      |Δ| > max_rate_change,
citation_drop_rate       share of answers with a dropped citation     p < alpha
feedback_rate            share of answers rated
negative_feedback_rate   thumbs-down share of the rated ones
latency_p95              ratio of the p95 latencies, permutation      ratio > max_latency_ratio,
                                                                      p < alpha
document_types           PSI of the media types coming in             PSI > max_psi, p < alpha
document_languages       PSI of their languages                       PSI > max_psi, p < alpha
=======================  ===========================================  ======================

Against the suite, only what a suite has is compared: its questions and their languages, and
(from the production release's latest run on it) its refusal rate and latency.
A window with fewer than ``min_questions`` traces is reported, not judged.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from core.errors import GedragError, NotFound
from core.settings import MonitoringSettings
from evaluation import suites
from evaluation.gate import load_policy
from evaluation.metrics import percentile
from monitoring import stats
from stores.catalog.evaluation import EvalStore
from stores.catalog.models import utcnow
from stores.catalog.traces import IncomingVersion, TracePoint, TraceRepository
from textmodels.language import detect_language

Against = Literal["reference", "suite"]
Embed = Callable[[list[str]], list[list[float]]]
SEED = 0


@dataclass(frozen=True)
class Check:
    """One comparison: its statistic, p-value and threshold, whether it crossed, and what
    the report's plot draws (``plot``: shares or histogram per side, or 2-D points)."""

    name: str
    against: Against
    statistic: str
    value: float | None
    p_value: float | None
    threshold: float
    crossed: bool
    sizes: tuple[int, int]  # (reference or suite, last window)
    detail: str
    plot: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """What a window holds: questions and their outcomes, and documents coming in."""

    questions: list[str]
    languages: list[str]
    top_scores: list[float]
    refused: list[bool]
    dropped: list[bool]
    latencies: list[float]
    ratings: list[int | None]
    documents: list[IncomingVersion] = field(default_factory=list)

    @classmethod
    def of(cls, points: Sequence[TracePoint], documents: Sequence[IncomingVersion] = ()) -> Window:
        return cls(
            questions=[p.question for p in points],
            languages=[p.language for p in points],
            top_scores=[p.top_score for p in points if p.top_score is not None],
            refused=[p.refused for p in points],
            dropped=[p.citations_dropped > 0 for p in points],
            latencies=[p.latency_ms for p in points],
            ratings=[p.rating for p in points],
            documents=list(documents),
        )

    @classmethod
    def of_suite(
        cls, questions: Sequence[str], refused: Sequence[bool], latencies: Sequence[float]
    ) -> Window:
        return cls(
            questions=list(questions),
            languages=[detect_language(q) for q in questions],
            top_scores=[],
            refused=list(refused),
            dropped=[],
            latencies=list(latencies),
            ratings=[],
        )


@dataclass
class DriftReport:
    tenant_id: str
    created_at: datetime
    window: tuple[datetime, datetime]
    reference: tuple[datetime, datetime]
    suite: dict[str, Any] | None
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    alert_against: tuple[str, ...] = ("reference", "suite")

    @property
    def alerts(self) -> list[Check]:
        return [c for c in self.checks if c.crossed and c.against in self.alert_against]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "created_at": self.created_at.isoformat(),
            "window": {"since": self.window[0].isoformat(), "until": self.window[1].isoformat()},
            "reference": {
                "since": self.reference[0].isoformat(),
                "until": self.reference[1].isoformat(),
            },
            "suite": self.suite,
            "checks": [c.to_dict() for c in self.checks],
            "alerts": [f"{c.name} ({c.against})" for c in self.alerts],
            "notes": self.notes,
        }


def windows(
    cfg: MonitoringSettings,
    now: datetime,
    since: datetime | None = None,
    reference_since: datetime | None = None,
) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """(last window, reference window): the last ``window_days`` before ``now`` and the
    ``reference_days`` before that, unless ``since`` / ``reference_since`` say otherwise."""
    start = since or now - timedelta(days=cfg.window_days)
    ref_start = reference_since or start - timedelta(days=cfg.reference_days)
    if not ref_start < start < now:
        raise ValueError(
            "the reference window must start before the last one, which must start before now"
        )
    return (start, now), (ref_start, start)


def compare(
    reference: Window,
    current: Window,
    against: Against,
    cfg: MonitoringSettings,
    embed: Embed,
) -> list[Check]:
    """Every check that both windows can answer."""
    judge = Judge(cfg, against)
    checks = [judge.questions(reference.questions, current.questions, embed)]
    checks.append(judge.categories("language", reference.languages, current.languages))
    if against == "reference" or reference.top_scores:
        checks.append(judge.distribution("top_score", reference.top_scores, current.top_scores))
    checks.append(judge.rate("refusal_rate", reference.refused, current.refused))
    if against == "reference":
        checks.append(judge.rate("citation_drop_rate", reference.dropped, current.dropped))
        checks.append(
            judge.rate(
                "feedback_rate",
                [r is not None for r in reference.ratings],
                [r is not None for r in current.ratings],
            )
        )
        checks.append(
            judge.rate(
                "negative_feedback_rate",
                [r < 0 for r in reference.ratings if r is not None],
                [r < 0 for r in current.ratings if r is not None],
            )
        )
    checks.append(judge.latency(reference.latencies, current.latencies))
    if against == "reference":
        checks.append(
            judge.categories(
                "document_types",
                [d.media_type for d in reference.documents],
                [d.media_type for d in current.documents],
            )
        )
        checks.append(
            judge.categories(
                "document_languages",
                [d.language for d in reference.documents],
                [d.language for d in current.documents],
            )
        )
    return checks


class Judge:
    """The checks of one comparison, with its thresholds."""

    def __init__(self, cfg: MonitoringSettings, against: Against) -> None:
        self.cfg = cfg
        self.against = against

    def _sizes_ok(self, n_ref: int, n_cur: int) -> bool:
        return min(n_ref, n_cur) >= self.cfg.min_questions

    def _waiting(self, name: str, statistic: str, threshold: float, n: tuple[int, int]) -> Check:
        return Check(
            name,
            self.against,
            statistic,
            None,
            None,
            threshold,
            False,
            n,
            f"not enough data: {n[0]} and {n[1]}; {self.cfg.min_questions} of each are needed",
        )

    def _judged(
        self,
        name: str,
        statistic: str,
        result: stats.TestResult,
        threshold: float,
        large: bool,
        n: tuple[int, int],
        detail: str,
        plot: dict[str, Any],
    ) -> Check:
        """A check crosses its threshold when the change is ``large`` and significant."""
        crossed = bool(large) and result.p_value < self.cfg.alpha
        return Check(
            name,
            self.against,
            statistic,
            round(float(result.statistic), 6),
            round(float(result.p_value), 6),
            threshold,
            crossed,
            n,
            detail,
            plot,
        )

    def questions(self, ref: list[str], cur: list[str], embed: Embed) -> Check:
        n = (len(ref), len(cur))
        if not self._sizes_ok(*n):
            return self._waiting("questions", "mmd2", self.cfg.alpha, n)
        rng = random.Random(SEED)  # noqa: S311 - sampling, not security
        cap = self.cfg.max_questions
        a = rng.sample(ref, cap) if len(ref) > cap else ref
        b = rng.sample(cur, cap) if len(cur) > cap else cur
        vectors = np.asarray(embed([*a, *b]), dtype=np.float64)
        x, y = vectors[: len(a)], vectors[len(a) :]
        result = stats.mmd_test(x, y, permutations=self.cfg.permutations, seed=SEED)
        differ = "differ" if result.p_value < self.cfg.alpha else "do not differ"
        return self._judged(
            "questions",
            "mmd2",
            result,
            self.cfg.alpha,
            True,
            n,
            f"question embeddings {differ} (MMD² {result.statistic:.4f}, p = {result.p_value:.4f})",
            {"points": projected(x, y)},
        )

    def categories(self, name: str, ref: list[str], cur: list[str]) -> Check:
        n = (len(ref), len(cur))
        if not self._sizes_ok(*n):
            return self._waiting(name, "psi", self.cfg.max_psi, n)
        result = stats.categorical_psi_test(ref, cur, permutations=self.cfg.permutations, seed=SEED)
        return self._judged(
            name,
            "psi",
            result,
            self.cfg.max_psi,
            result.statistic > self.cfg.max_psi,
            n,
            f"PSI {result.statistic:.3f} (p = {result.p_value:.4f})",
            {"reference": stats.shares(ref), "current": stats.shares(cur)},
        )

    def distribution(self, name: str, ref: list[float], cur: list[float]) -> Check:
        n = (len(ref), len(cur))
        if not self._sizes_ok(*n):
            return self._waiting(name, "psi", self.cfg.max_psi, n)
        result = stats.psi_test(ref, cur, permutations=self.cfg.permutations, seed=SEED)
        edges = stats.quantile_edges(ref)
        labels = [f"≤{e:.2f}" for e in edges] + [f">{edges[-1]:.2f}" if len(edges) else "all"]
        ref_counts, cur_counts = stats.binned(ref, edges), stats.binned(cur, edges)
        return self._judged(
            name,
            "psi",
            result,
            self.cfg.max_psi,
            result.statistic > self.cfg.max_psi,
            n,
            f"PSI {result.statistic:.3f} (p = {result.p_value:.4f}); median "
            f"{float(np.median(ref)):.3f} → {float(np.median(cur)):.3f}",
            {
                "reference": dict(zip(labels, _shares(ref_counts), strict=True)),
                "current": dict(zip(labels, _shares(cur_counts), strict=True)),
            },
        )

    def rate(self, name: str, ref: list[bool], cur: list[bool]) -> Check:
        n = (len(ref), len(cur))
        if not self._sizes_ok(*n):
            return self._waiting(name, "rate change", self.cfg.max_rate_change, n)
        result = stats.two_proportions(sum(ref), len(ref), sum(cur), len(cur))
        before, after = sum(ref) / len(ref), sum(cur) / len(cur)
        return self._judged(
            name,
            "rate change",
            result,
            self.cfg.max_rate_change,
            abs(result.statistic) > self.cfg.max_rate_change,
            n,
            f"{before:.3f} → {after:.3f} (p = {result.p_value:.4f})",
            {"reference": {name: round(before, 4)}, "current": {name: round(after, 4)}},
        )

    def latency(self, ref: list[float], cur: list[float]) -> Check:
        n = (len(ref), len(cur))
        if not self._sizes_ok(*n):
            return self._waiting("latency_p95", "p95 ratio", self.cfg.max_latency_ratio, n)
        result = stats.p95_ratio_test(ref, cur, permutations=self.cfg.permutations, seed=SEED)
        p50 = (float(percentile(ref, 50)), float(percentile(cur, 50)))
        p95 = (float(percentile(ref, 95)), float(percentile(cur, 95)))
        return self._judged(
            "latency_p95",
            "p95 ratio",
            result,
            self.cfg.max_latency_ratio,
            result.statistic > self.cfg.max_latency_ratio,
            n,
            f"p95 {p95[0]:.0f} ms → {p95[1]:.0f} ms (p = {result.p_value:.4f})",
            {
                "reference": {"p50": p50[0], "p95": p95[0]},
                "current": {"p50": p50[1], "p95": p95[1]},
            },
        )


def _shares(counts: np.ndarray) -> list[float]:
    total = float(counts.sum()) or 1.0
    return [round(float(c) / total, 4) for c in counts]


def projected(x: np.ndarray, y: np.ndarray) -> dict[str, list[list[float]]]:
    """Both samples on the first two principal axes of the pooled vectors, scaled to 0..1:
    what the report's scatter draws."""
    z = np.vstack([x, y])
    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    span = np.where(np.ptp(xy, axis=0) > 0, np.ptp(xy, axis=0), 1.0)
    scaled = (xy - xy.min(axis=0)) / span
    rounded = np.round(scaled, 3).tolist()
    return {"reference": rounded[: len(x)], "current": rounded[len(x) :]}


def report(
    repo: TraceRepository,
    store: EvalStore,
    tenant_id: str,
    cfg: MonitoringSettings,
    embed: Embed,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    reference_since: datetime | None = None,
) -> DriftReport:
    """The tenant's drift report: its served answers of the last window against the
    reference window and against the production release's suite."""
    now = now or utcnow()
    (w0, w1), (r0, r1) = windows(cfg, now, since, reference_since)
    current = Window.of(
        repo.points(tenant_id, since=w0, until=w1), repo.incoming(tenant_id, w0, w1)
    )
    reference = Window.of(
        repo.points(tenant_id, since=r0, until=r1), repo.incoming(tenant_id, r0, r1)
    )
    checks = compare(reference, current, "reference", cfg, embed)
    notes: list[str] = []
    suite: dict[str, Any] | None = None
    try:
        suite_window, suite = production_suite(store)
    except GedragError as exc:
        notes.append(f"not compared with the production release's suite: {exc.detail}")
    else:
        checks += compare(suite_window, current, "suite", cfg, embed)
    return DriftReport(
        tenant_id, now, (w0, w1), (r0, r1), suite, checks, notes, tuple(cfg.alert_against)
    )


def production_suite(store: EvalStore) -> tuple[Window, dict[str, Any]]:
    """The suite the production release was promoted on (its questions), with the refusals
    and latencies of the release's latest run on it."""
    production = store.production_id()
    if production is None:
        raise NotFound("no release is in production")
    decision = next((d for d in store.decisions(production) if d.promoted and d.suite), None)
    name = decision.suite if decision is not None and decision.suite else load_policy().suite
    if not name:
        raise NotFound(f"release {production} was promoted without a suite")
    suite = suites.load_suite(name)
    run = store.latest_run(production, name)
    results = run.results if run is not None else []
    window = Window.of_suite(
        [q.question for q in suite.questions],
        [not r["grounded"] for r in results],
        [float(r["timings_ms"]["ask_total"]) for r in results if "ask_total" in r["timings_ms"]],
    )
    info = {
        "name": name,
        "suite_id": suite.id,
        "release_id": production,
        "run_id": run.id if run is not None else None,
        "questions": len(suite.questions),
    }
    return window, info
