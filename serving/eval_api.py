"""Releases and evaluation runs over HTTP (platform-level: any valid key reads; only the
tenants named in ``GEDRAG_EVALUATION__PROMOTERS`` may promote)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from core.domain import Tenant
from core.errors import Forbidden
from evaluation import service as evals
from runtime import Runtime
from serving.api import ERRORS, current_tenant, runtime
from serving.schemas import ErrorPublic
from stores.catalog.evaluation import EvalStore

router = APIRouter(
    prefix="/v1", responses={**ERRORS, 403: {"model": ErrorPublic}}, tags=["evaluation"]
)
Caller = Annotated[Tenant, Depends(current_tenant)]


def eval_store(rt: Annotated[Runtime, Depends(runtime)]) -> EvalStore:
    return EvalStore(rt.catalog)


Store = Annotated[EvalStore, Depends(eval_store)]


class PromoteRequest(BaseModel):
    suite: str | None = Field(default=None, description="Suite to judge on (policy default).")


class RunSummary(BaseModel):
    id: str
    suite: str
    suite_id: str
    scores: dict[str, float]
    finished_at: datetime | None
    report_url: str


class ReleasePublic(BaseModel):
    id: str = Field(description="rel_ + hash of the canonical config.")
    name: str
    production: bool
    created_at: datetime
    latest_runs: list[RunSummary] = Field(description="The newest run per suite.")


class ReleaseDetail(ReleasePublic):
    config: dict[str, Any] = Field(description="The release file as JSON, defaults filled in.")


class ReleasesPage(BaseModel):
    production: str | None = Field(description="Id of the production release, if any.")
    releases: list[ReleasePublic]


class PromotionPublic(BaseModel):
    promoted: bool
    release_id: str
    previous: str | None = Field(description="Production before this decision.")
    reasons: list[str] = Field(description="Why it was refused (empty when promoted).")
    decision_id: str


@router.get("/releases", response_model=ReleasesPage)
def list_releases(_: Caller, store: Store) -> dict[str, Any]:
    """Every release, which one is in production, and each one's newest run per suite."""
    return evals.releases_public(store)


@router.get("/releases/{release_id}", response_model=ReleaseDetail)
def get_release(release_id: str, _: Caller, store: Store) -> dict[str, Any]:
    r = store.get_release(release_id)
    return {
        **evals.release_public(store, r, store.production_id()),
        "config": {"name": r.name, "description": r.description, **r.config},
    }


@router.post("/releases/{release_id}/promote", response_model=PromotionPublic)
def promote_release(
    release_id: str,
    tenant: Caller,
    store: Store,
    request: Request,
    body: PromoteRequest | None = None,
) -> dict[str, Any]:
    """Promote through the gate; ``promoted: false`` comes with readable ``reasons``."""
    rt: Runtime = request.app.state.runtime
    if tenant.name not in rt.settings.evaluation.promoters:
        raise Forbidden(
            f"tenant {tenant.name!r} may not promote releases "
            "(GEDRAG_EVALUATION__PROMOTERS names those that may)"
        )
    stored = store.get_release(release_id)
    decision = evals.promote(
        store,
        stored.id,
        suite=body.suite if body else None,
        policy_path=rt.settings.evaluation.policy,
        decided_by=f"api:{tenant.name}",
    )
    if decision.promoted:
        request.app.state.release_checked_at = None  # serving re-reads production at once
    return evals.decision_public(decision)


@router.get("/eval/runs/{run_id}")
def get_run(run_id: str, _: Caller, store: Store) -> dict[str, Any]:
    """The run: aggregate scores, latency, and per-question results."""
    return evals.run_public(store.get_run(run_id))


@router.get("/eval/runs/{run_id}/report.html", response_class=HTMLResponse)
def run_report(run_id: str, _: Caller, store: Store) -> HTMLResponse:
    """The self-contained HTML report (plots inline as SVG)."""
    return HTMLResponse(evals.report(store, run_id, "html"))
