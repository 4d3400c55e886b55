"""The promotion gate: absolute floors, the largest regression allowed against production, and
a paired bootstrap on per-question scores so that noise neither blocks nor passes a release.

A regression counts against a candidate when its mean paired difference is worse than the
allowed drop **and** the bootstrap confidence interval lies entirely below zero. Without the
second condition a few noisy questions would block a release; without the first, a tiny but
consistent drop would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInput
from evaluation.metrics import PairedDiff, paired_bootstrap
from evaluation.release import RELEASES_DIR
from stores.catalog.evaluation import StoredRun

DEFAULT_POLICY = RELEASES_DIR / "gate.yaml"


class Bootstrap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resamples: int = Field(default=2000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    seed: int = 0


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str | None = None
    floors: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=dict)
    bootstrap: Bootstrap = Bootstrap()


def load_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_POLICY
    try:
        return Policy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except OSError as exc:
        raise InvalidInput(f"cannot read gate policy {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise InvalidInput(f"gate policy {path} is invalid: {exc}") from exc


def paired(candidate: StoredRun, baseline: StoredRun, metric: str, policy: Policy) -> PairedDiff:
    """Candidate minus baseline on the questions both runs scored for ``metric``."""
    base = {
        r["id"]: r["scores"][metric]
        for r in baseline.results
        if r["scores"].get(metric) is not None
    }
    diffs = [
        float(r["scores"][metric]) - float(base[r["id"]])
        for r in candidate.results
        if r["scores"].get(metric) is not None and r["id"] in base
    ]
    b = policy.bootstrap
    return paired_bootstrap(diffs, resamples=b.resamples, confidence=b.confidence, seed=b.seed)


@dataclass
class GateResult:
    passed: bool
    reasons: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)


def evaluate_gate(
    policy: Policy,
    candidate: StoredRun | None,
    production: StoredRun | None,
    *,
    candidate_id: str,
    production_id: str | None,
    suite: str,
) -> GateResult:
    reasons: list[str] = []
    evidence: dict[str, Any] = {
        "suite": suite,
        "policy": policy.model_dump(),
        "candidate_run": candidate.id if candidate else None,
        "production_run": production.id if production else None,
    }
    if candidate is None:
        return GateResult(
            False,
            [
                f"release {candidate_id} has no finished evaluation on suite {suite!r}: run "
                f"`gedrag eval run --release <file> --suite {suite}` first"
            ],
            evidence,
        )
    evidence["candidate_scores"] = candidate.scores
    for metric, floor in sorted(policy.floors.items()):
        value = candidate.scores.get(metric)
        if value is None:
            reasons.append(
                f"{metric}: not measured on suite {suite!r}, and the policy sets a floor"
            )
        elif value < floor:
            reasons.append(f"{metric} {value:.3f} is below the floor {floor:.3f}")
    if production_id is not None and production_id != candidate_id:
        if production is None:
            reasons.append(
                f"the production release {production_id} has no evaluation on suite {suite!r} "
                "to compare with: evaluate it on the same suite first"
            )
        elif production.suite_id != candidate.suite_id:
            reasons.append(
                f"the runs compared used different versions of suite {suite!r} "
                f"({candidate.suite_id} vs {production.suite_id}): re-run both on the same data"
            )
        else:
            evidence["production_scores"] = production.scores
            comparisons: dict[str, Any] = {}
            conf = int(policy.bootstrap.confidence * 100)
            for metric, allowed in sorted(policy.max_regression.items()):
                d = paired(candidate, production, metric, policy)
                if d.n == 0:
                    continue
                significant = d.high < 0
                too_large = d.mean < -allowed
                comparisons[metric] = {
                    **d.to_dict(),
                    "allowed_drop": allowed,
                    "regression": significant and too_large,
                }
                if significant and too_large:
                    reasons.append(
                        f"{metric} regressed by {-d.mean:.3f} against production {production_id} "
                        f"(allowed {allowed:.3f}; paired {conf}% CI of the difference "
                        f"[{d.low:+.3f}, {d.high:+.3f}] over {d.n} questions)"
                    )
            evidence["comparisons"] = comparisons
    return GateResult(not reasons, reasons, evidence)
