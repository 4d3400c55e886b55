"""What the CLI and the API do with releases and runs: register, promote through the gate,
compare, and describe them as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, NotFound
from evaluation import report as reports
from evaluation import suites
from evaluation.gate import evaluate_gate, load_policy, paired
from evaluation.release import Release, from_stored, load_release, packaged
from stores.catalog.evaluation import Decision, EvalStore, StoredRelease, StoredRun


def suite_name_of(ref: str | None) -> str | None:
    return suites.suite_name(ref) if ref else None


def register(store: EvalStore, release: Release) -> StoredRelease:
    return store.save_release(release.id, release.name, release.description, release.config)


def resolve_release(store: EvalStore, ref: str) -> StoredRelease:
    """A release by id, by name (the newest of that name; else the shipped release of that
    name) or by YAML file (registered)."""
    path = Path(ref)
    if ref.endswith((".yaml", ".yml")) or path.is_file():
        return register(store, load_release(path))
    try:
        return store.get_release(ref)
    except NotFound:
        if packaged(ref) is None:
            raise
        return register(store, load_release(ref))


def as_release(stored: StoredRelease) -> Release:
    return from_stored(stored.name, stored.description, stored.config)


def promote(
    store: EvalStore,
    ref: str,
    *,
    suite: str | None = None,
    policy_path: Path | None = None,
    decided_by: str = "cli",
    online_reasons: Sequence[str] = (),
    online_evidence: dict[str, Any] | None = None,
) -> Decision:
    """Promote ``ref`` if the gate passes; the decision is recorded either way. A canary's
    online evidence (``monitoring.online``) is recorded beside the offline one, and its
    ``online_reasons`` refuse the release like the gate's own."""
    policy = load_policy(policy_path)
    candidate = resolve_release(store, ref)
    suite_name = suite_name_of(suite or policy.suite)
    if not suite_name:
        raise InvalidInput("name a suite: the gate policy has no default suite", field="suite")
    production_id = store.production_id()
    if production_id == candidate.id:
        return store.record_decision(
            release_id=candidate.id,
            previous_id=production_id,
            suite=suite_name,
            promoted=False,
            reasons=[f"release {candidate.id} is already in production"],
            evidence={},
            decided_by=decided_by,
        )
    cand_run = store.latest_run(candidate.id, suite_name)
    prod_run = store.latest_run(production_id, suite_name) if production_id else None
    if cand_run and prod_run and prod_run.suite_id != cand_run.suite_id:
        same = [
            r
            for r in store.runs(production_id, suite=suite_name)
            if r.suite_id == cand_run.suite_id
        ]
        prod_run = store.get_run(same[0].id) if same else prod_run
    result = evaluate_gate(
        policy,
        cand_run,
        prod_run,
        candidate_id=candidate.id,
        production_id=production_id,
        suite=suite_name,
    )
    reasons = [*result.reasons, *online_reasons]
    evidence = dict(result.evidence)
    if online_evidence is not None:
        evidence["online"] = online_evidence
    return store.record_decision(
        release_id=candidate.id,
        previous_id=production_id,
        suite=suite_name,
        promoted=not reasons,
        reasons=reasons,
        evidence=evidence,
        decided_by=decided_by,
    )


def resolve_run(store: EvalStore, ref: str, suite: str | None = None) -> StoredRun:
    """A run by id, or the newest run of a release (id, name or file) on ``suite``."""
    try:
        return store.get_run(ref)
    except NotFound:
        pass
    release = resolve_release(store, ref)
    runs = store.runs(release.id, suite=suite)
    if not runs:
        where = f" on suite {suite!r}" if suite else ""
        raise NotFound(f"release {release.name} ({release.id}) has no finished run{where}")
    return store.get_run(runs[0].id)


def compare(store: EvalStore, a: str, b: str, suite: str | None = None) -> dict[str, Any]:
    """Per-question differences B - A, with paired bootstrap intervals per metric."""
    suite = suite_name_of(suite)
    run_a = resolve_run(store, a, suite)
    run_b = resolve_run(store, b, suite or run_a.suite)
    if run_a.suite_id != run_b.suite_id:
        raise InvalidInput(
            f"runs {run_a.id} and {run_b.id} are on different suites "
            f"({run_a.suite}:{run_a.suite_id} vs {run_b.suite}:{run_b.suite_id})"
        )
    policy = load_policy()
    metrics = sorted(set(run_a.scores) & set(run_b.scores))
    by_id = {r["id"]: r for r in run_a.results}
    questions = []
    for r in run_b.results:
        other = by_id.get(r["id"])
        if other is None:
            continue
        diffs = {
            m: round(float(r["scores"][m]) - float(other["scores"][m]), 6)
            for m in metrics
            if r["scores"].get(m) is not None and other["scores"].get(m) is not None
        }
        questions.append(
            {
                "id": r["id"],
                "question": r["question"],
                "a": {m: other["scores"].get(m) for m in metrics},
                "b": {m: r["scores"].get(m) for m in metrics},
                "diff": diffs,
                "answer_a": other["answer"],
                "answer_b": r["answer"],
            }
        )
    return {
        "a": run_public(run_a, results=False),
        "b": run_public(run_b, results=False),
        "metrics": {
            m: {
                "a": run_a.scores[m],
                "b": run_b.scores[m],
                **paired(run_b, run_a, m, policy).to_dict(),
            }
            for m in metrics
        },
        "questions": questions,
    }


def run_public(run: StoredRun, *, results: bool = True) -> dict[str, Any]:
    return {
        **reports.run_dict(run, results=results),
        "report_url": f"/v1/eval/runs/{run.id}/report.html",
    }


def release_public(store: EvalStore, r: StoredRelease, production: str | None) -> dict[str, Any]:
    latest: dict[str, StoredRun] = {}
    for run in store.runs(r.id):
        latest.setdefault(run.suite, run)  # newest first
    return {
        "id": r.id,
        "name": r.name,
        "production": r.id == production,
        "created_at": r.created_at.isoformat(),
        "latest_runs": [
            {
                "id": run.id,
                "suite": run.suite,
                "suite_id": run.suite_id,
                "scores": run.scores,
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "report_url": f"/v1/eval/runs/{run.id}/report.html",
            }
            for run in latest.values()
        ],
    }


def releases_public(store: EvalStore) -> dict[str, Any]:
    production = store.production_id()
    return {
        "production": production,
        "releases": [release_public(store, r, production) for r in store.list_releases()],
    }


def decision_public(d: Decision) -> dict[str, Any]:
    return {
        "promoted": d.promoted,
        "release_id": d.release_id,
        "previous": d.previous_id,
        "reasons": d.reasons,
        "decision_id": d.id,
    }


def _same_suite_runs(store: EvalStore, run: StoredRun) -> list[tuple[str, StoredRun]]:
    """The newest run of every other release on the same suite data."""
    out: list[tuple[str, StoredRun]] = []
    for r in store.list_releases():
        if r.id == run.release_id:
            continue
        same = [x for x in store.runs(r.id, suite=run.suite) if x.suite_id == run.suite_id]
        if same:
            out.append((r.name, store.get_run(same[0].id)))
    return out


def report(store: EvalStore, run_id: str, fmt: str = "html") -> str:
    run = store.get_run(run_id)
    name = store.get_release(run.release_id).name
    if fmt == "json":
        return reports.to_json(run, name)
    if fmt in ("md", "markdown"):
        return reports.to_markdown(run, name)
    others = _same_suite_runs(store, run)
    production = store.production_id()
    baseline = None
    if production and production != run.release_id:
        prod_name = store.get_release(production).name
        baseline = next(((n, r) for n, r in others if r.release_id == production), None)
        if baseline is not None:
            baseline = (f"{prod_name} (production)", baseline[1])
    return reports.to_html(run, name, others=others, baseline=baseline)
