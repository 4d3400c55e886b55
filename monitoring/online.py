"""Online A/B between the production release and a challenger, on one tenant's traffic.

* **Shadow**: every answered question is answered again by the challenger, off the request
  path; its answer is traced (``arm=shadow``, ``parent_id`` = the served trace) and never
  shown. Both releases answered the same questions, so they are compared **paired**, with the
  promotion gate's own bootstrap (:func:`evaluation.metrics.paired_bootstrap`).
* **Canary**: a share of the tenant's callers is answered by the challenger, sticky per
  caller (a hash of the experiment and the caller: the same person always sees the same
  release, and raising the share keeps those already in). The arms answered different
  questions: they are compared **unpaired** (:func:`monitoring.stats.unpaired_bootstrap`).

Guardrails (refusal rate, p95 latency, thumbs-down share) are checked after every batch of
traces and after feedback; one that trips rolls the canary back at once. Promotion from the
canary goes through the promotion gate (:func:`evaluation.service.promote`), with the online
evidence recorded beside the offline one; an online regression refuses it like an offline one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import InvalidInput, NotFound
from core.metrics import CANARY, ROLLBACKS
from core.settings import GuardrailSettings, MonitoringSettings
from evaluation import service as evals
from evaluation.gate import Bootstrap, load_policy
from evaluation.metrics import PairedDiff, paired_bootstrap, percentile
from evaluation.release import load_release, packaged
from monitoring.stats import unpaired_bootstrap
from stores.catalog.evaluation import Decision, EvalStore, StoredRelease
from stores.catalog.traces import Experiment, Mode, TracePoint, TraceRecord, TraceRepository

log = logging.getLogger(__name__)

# A guardrail check reads the arms' traces from the catalog: at most once a second per
# experiment, whatever the traffic (the writer may store a batch every few milliseconds).
CHECK_EVERY_S = 1.0
# What shadow answers are compared on, paired with the served answer to the same question.
PAIRED_METRICS = ("refused", "latency_ms", "citations_dropped", "top_score")


def in_canary(experiment_id: str, caller: str, share: float) -> bool:
    """Whether ``caller`` is answered by the canary: a uniform hash of the experiment and the
    caller below ``share``. Sticky for a caller; monotone in ``share``."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{caller}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass(frozen=True)
class Guard:
    """One guardrail's reading. ``value``: the canary minus production (rates) or their ratio
    (p95 latency); ``interval``: the bootstrap interval of the difference."""

    name: str
    value: float | None
    limit: float
    interval: PairedDiff | None
    ready: bool
    tripped: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = self.interval.to_dict() if self.interval else None
        return out


def guardrails(
    production: Sequence[TracePoint],
    canary: Sequence[TracePoint],
    cfg: GuardrailSettings,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> list[Guard]:
    """The canary's guardrails against production. A guardrail trips when the canary is worse
    by more than its margin and the whole bootstrap interval is on the worse side."""
    ready = len(production) >= cfg.min_questions and len(canary) >= cfg.min_questions
    waiting = (
        f"{len(canary)} canary and {len(production)} production answers; "
        f"{cfg.min_questions} of each are needed"
    )
    guards: list[Guard] = []

    def boot(
        a: list[float], b: list[float], statistic: Literal["mean", "p95"] = "mean"
    ) -> PairedDiff:
        return unpaired_bootstrap(
            a, b, statistic, resamples=resamples, confidence=cfg.confidence, seed=seed
        )

    refusals = (
        boot([float(p.refused) for p in production], [float(p.refused) for p in canary])
        if ready
        else None
    )
    guards.append(
        _guard(
            "refusal_rate",
            refusals,
            cfg.max_refusal_increase,
            ready,
            waiting,
            "refusal rate {:+.3f} against production",
        )
    )

    latency: Guard
    if ready:
        base = percentile([p.latency_ms for p in production], 95)
        ratio = percentile([p.latency_ms for p in canary], 95) / base if base > 0 else 1.0
        diff = boot([p.latency_ms for p in production], [p.latency_ms for p in canary], "p95")
        tripped = ratio > cfg.max_latency_ratio and diff.low > 0
        latency = Guard(
            "latency_p95",
            round(ratio, 4),
            cfg.max_latency_ratio,
            diff,
            True,
            tripped,
            f"p95 latency {ratio:.2f}x production's",
        )
    else:
        latency = Guard("latency_p95", None, cfg.max_latency_ratio, None, False, False, waiting)
    guards.append(latency)

    rated_p = [float(p.rating < 0) for p in production if p.rating is not None]
    rated_c = [float(p.rating < 0) for p in canary if p.rating is not None]
    rated = len(rated_p) >= cfg.min_ratings and len(rated_c) >= cfg.min_ratings
    negative = boot(rated_p, rated_c) if rated else None
    guards.append(
        _guard(
            "negative_feedback",
            negative,
            cfg.max_negative_increase,
            rated,
            f"{len(rated_c)} canary and {len(rated_p)} production ratings; "
            f"{cfg.min_ratings} of each are needed",
            "thumbs-down share {:+.3f} against production",
        )
    )
    return guards


def _guard(
    name: str, diff: PairedDiff | None, limit: float, ready: bool, waiting: str, said: str
) -> Guard:
    if diff is None or not ready:
        return Guard(name, None, limit, None, False, False, waiting)
    tripped = diff.mean > limit and diff.low > 0
    return Guard(name, diff.mean, limit, diff, True, tripped, said.format(diff.mean))


@dataclass(frozen=True)
class ArmStats:
    """One arm's online metrics."""

    answers: int
    refusal_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    citation_drop_rate: float
    rated: int
    negative_rate: float | None

    @classmethod
    def of(cls, points: Sequence[TracePoint]) -> ArmStats:
        n = len(points)
        rated = [p for p in points if p.rating is not None]
        latencies = [p.latency_ms for p in points]
        return cls(
            answers=n,
            refusal_rate=round(sum(p.refused for p in points) / n, 4) if n else 0.0,
            latency_p50_ms=round(percentile(latencies, 50), 2),
            latency_p95_ms=round(percentile(latencies, 95), 2),
            citation_drop_rate=round(sum(p.citations_dropped > 0 for p in points) / n, 4)
            if n
            else 0.0,
            rated=len(rated),
            negative_rate=round(sum(p.rating < 0 for p in rated) / len(rated), 4)  # type: ignore[operator]
            if rated
            else None,
        )


def compare_online(
    repo: TraceRepository, exp: Experiment, cfg: GuardrailSettings, bootstrap: Bootstrap
) -> tuple[list[str], dict[str, Any]]:
    """The online evidence of an experiment and the reasons it shows against promotion:
    shadow answers compared paired with production's on the same questions, the canary's
    arms compared unpaired, with the gate's bootstrap settings. A regression is held against
    the challenger when it exceeds the guardrail's margin and its interval lies wholly on the
    worse side."""
    pairs = repo.shadow_pairs(exp.tenant_id, exp.id)
    paired: dict[str, Any] = {}
    for metric in PAIRED_METRICS:
        diffs = [
            float(getattr(shadow, metric)) - float(getattr(served, metric))
            for served, shadow in pairs
            if getattr(shadow, metric) is not None and getattr(served, metric) is not None
        ]
        paired[metric] = paired_bootstrap(
            diffs,
            resamples=bootstrap.resamples,
            confidence=bootstrap.confidence,
            seed=bootstrap.seed,
        ).to_dict()
    production, canary = arms(repo, exp)
    stats = {"production": asdict(ArmStats.of(production)), "canary": asdict(ArmStats.of(canary))}
    guards = (
        guardrails(production, canary, cfg, resamples=bootstrap.resamples, seed=bootstrap.seed)
        if exp.canary_since
        else []
    )
    reasons: list[str] = []
    if exp.state == "rolled_back":
        reasons.append(f"the canary was rolled back: {exp.reason}")
    if exp.canary_since is None:
        reasons.append("the challenger has only run in shadow: run it as a canary first")
    elif len(canary) < cfg.min_questions:
        reasons.append(
            f"the canary answered {len(canary)} questions; {cfg.min_questions} are needed "
            "before promotion"
        )
    reasons += [f"online {g.name}: {g.detail} (limit {g.limit})" for g in guards if g.tripped]
    evidence = {
        "experiment_id": exp.id,
        "mode": exp.mode,
        "share": exp.share,
        "shadow_pairs": len(pairs),
        "paired": paired,
        "arms": stats,
        "guardrails": [g.to_dict() for g in guards],
    }
    return reasons, evidence


def arms(repo: TraceRepository, exp: Experiment) -> tuple[list[TracePoint], list[TracePoint]]:
    """(production, canary) answers of the experiment since it became a canary."""
    if exp.canary_since is None:
        return [], []
    points = repo.points(
        exp.tenant_id, since=exp.canary_since, arms=("production", "canary"), experiment_id=exp.id
    )
    return (
        [p for p in points if p.arm == "production"],
        [p for p in points if p.arm == "canary"],
    )


def stored_release(store: EvalStore, ref: str) -> StoredRelease:
    """A release by id or name, or one shipped with gedrag by name (registered): never a file
    a caller names, the server reads none."""
    try:
        return store.get_release(ref)
    except NotFound:
        shipped = packaged(ref)
        if shipped is None:
            raise NotFound(f"no release {ref!r} (give a release id or name)") from None
        return evals.register(store, load_release(shipped))


class Experiments:
    """A tenant's experiments: starting, switching, stopping, the guardrails, promotion; and
    the running experiment of each tenant as serving reads it (cached a few seconds)."""

    def __init__(
        self,
        repo: TraceRepository,
        store: EvalStore,
        settings: MonitoringSettings,
        *,
        name_of: Callable[[str], str] = str,
    ) -> None:
        self.repo = repo
        self.store = store
        self.settings = settings
        self.name_of = name_of  # a tenant's name, the metrics' label
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Experiment | None]] = {}
        self._checked: dict[str, float] = {}

    def running(self, tenant_id: str) -> Experiment | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(tenant_id)
            if hit is not None and now - hit[0] < self.settings.experiment_cache_s:
                return hit[1]
        exp = self.repo.running_experiment(tenant_id)
        with self._lock:
            self._cache[tenant_id] = (now, exp)
        return exp

    def forget(self, tenant_id: str) -> None:
        """Serving reads the tenant's experiment again at the next question."""
        with self._lock:
            self._cache.pop(tenant_id, None)

    def start(self, tenant_id: str, release: str, mode: Mode, share: float) -> Experiment:
        """A challenger release (id or name, or a shipped one by name) in ``mode``."""
        if not self.settings.traces:
            raise InvalidInput(
                "experiments need answer traces: set GEDRAG_MONITORING__TRACES=true",
                field="mode",
            )
        challenger = stored_release(self.store, release)
        champion = self.store.production_id()
        if challenger.id == champion:
            raise InvalidInput(
                f"release {challenger.id} is production already: name a challenger",
                field="release",
            )
        exp = self.repo.start_experiment(
            tenant_id, release_id=challenger.id, champion_id=champion, mode=mode, share=share
        )
        self.forget(tenant_id)
        log.info(
            "experiment started",
            extra={"experiment_id": exp.id, "release_id": exp.release_id, "mode": mode},
        )
        return exp

    def set_mode(self, tenant_id: str, experiment_id: str, mode: Mode, share: float) -> Experiment:
        exp = self.repo.set_mode(tenant_id, experiment_id, mode, share)
        self.forget(tenant_id)
        return exp

    def stop(self, tenant_id: str, experiment_id: str) -> Experiment:
        self.repo.end_experiment(tenant_id, experiment_id, "stopped", reason="stopped by a user")
        self.forget(tenant_id)
        return self.repo.experiment(tenant_id, experiment_id)

    def after_write(self, records: list[TraceRecord]) -> None:
        """The writer's listener: check the guardrails of the canaries these traces belong
        to (at most once a second each)."""
        touched = {
            (r.tenant_id, r.experiment_id) for r in records if r.experiment_id and r.arm != "shadow"
        }
        for tenant_id, experiment_id in touched:
            assert experiment_id is not None
            self.check(tenant_id, experiment_id)

    def check(self, tenant_id: str, experiment_id: str, *, force: bool = False) -> Experiment:
        """Read the canary's guardrails; roll it back when one trips."""
        now = time.monotonic()
        if not force and now - self._checked.get(experiment_id, 0.0) < CHECK_EVERY_S:
            return self.repo.experiment(tenant_id, experiment_id)
        self._checked[experiment_id] = now
        exp = self.repo.experiment(tenant_id, experiment_id)
        if exp.state != "running" or exp.mode != "canary":
            return exp
        production, canary = arms(self.repo, exp)
        guards = guardrails(production, canary, self.settings.guardrails)
        for g in guards:
            if g.value is not None:
                CANARY.labels(self.name_of(tenant_id), g.name).set(g.value)
        tripped = [g for g in guards if g.tripped]
        if not tripped:
            return exp
        reason = "; ".join(f"{g.name}: {g.detail} (limit {g.limit})" for g in tripped)
        evidence = {
            "canary_answers": len(canary),
            "production_answers": len(production),
            "guardrails": [g.to_dict() for g in guards],
        }
        ended = self.repo.end_experiment(
            tenant_id, exp.id, "rolled_back", reason=reason, evidence=evidence
        )
        self.forget(tenant_id)
        if ended is None:  # another process rolled it back first
            return self.repo.experiment(tenant_id, experiment_id)
        ROLLBACKS.inc()
        log.warning(
            "canary rolled back",
            extra={
                "experiment_id": exp.id,
                "release_id": exp.release_id,
                "reason": reason,
                "canary_answers": len(canary),
            },
        )
        return ended

    def evidence(self, exp: Experiment, policy_path: Path | None = None) -> dict[str, Any]:
        """The experiment's online comparison (the API's and the console's)."""
        bootstrap = load_policy(policy_path).bootstrap
        reasons, evidence = compare_online(self.repo, exp, self.settings.guardrails, bootstrap)
        return {**evidence, "blocking": reasons}

    def promote(
        self,
        tenant_id: str,
        experiment_id: str,
        *,
        suite: str | None = None,
        policy_path: Path | None = None,
        decided_by: str = "api",
    ) -> Decision:
        """Promote the canary's release through the promotion gate, the online evidence
        recorded with the offline one; the experiment ends ``promoted`` when it passes."""
        exp = self.repo.experiment(tenant_id, experiment_id)
        if exp.state not in ("running", "rolled_back"):
            raise InvalidInput(f"experiment {exp.id} is {exp.state}: nothing to promote")
        bootstrap = load_policy(policy_path).bootstrap
        reasons, evidence = compare_online(self.repo, exp, self.settings.guardrails, bootstrap)
        decision = evals.promote(
            self.store,
            exp.release_id,
            suite=suite,
            policy_path=policy_path,
            decided_by=f"{decided_by} (canary {exp.id})",
            online_reasons=reasons,
            online_evidence=evidence,
        )
        if decision.promoted:
            self.repo.end_experiment(
                tenant_id,
                exp.id,
                "promoted",
                reason=f"promoted by decision {decision.id}",
                evidence=evidence,
            )
            self.forget(tenant_id)
        return decision
