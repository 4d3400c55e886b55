"""Monitoring over HTTP: answer traces (list, one, JSON-lines export, feedback, replay,
retention), drift reports, and experiments (a challenger in shadow or as a canary, promotion
through the gate). Every route is scoped to the caller's tenant: another tenant's trace or
experiment answers 404.

``attach`` builds the process's :class:`monitoring.service.Monitor` and registers the daily
job on Celery (with a ticker in the embedded mode).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from core.domain import Tenant
from core.errors import Forbidden, NotFound
from evaluation import service as evals
from ingestion.celery_app import GedragCelery
from monitoring import tasks
from monitoring.report import to_html
from monitoring.service import Monitor, daily
from monitoring.traces import trace_json
from retrieval.service import QA
from runtime import Runtime
from serving.api import ERRORS, current_tenant
from serving.eval_api import PromotionPublic
from serving.qa_api import current_qa, release_qa
from serving.schemas import ErrorPublic, FeedbackCreate, IsoDateTime
from stores.catalog.models import utcnow
from stores.catalog.traces import (
    Arm,
    Experiment,
    Feedback,
    FeedbackFilter,
    Mode,
    TraceFilter,
    TraceRecord,
)

T = TypeVar("T")
WRITTEN_WAIT_S = 10.0  # at most this long for the writer to write a trace being rated or read

router = APIRouter(
    prefix="/v1", responses={**ERRORS, 403: {"model": ErrorPublic}}, tags=["monitoring"]
)
Caller = Annotated[Tenant, Depends(current_tenant)]


def monitor(request: Request) -> Monitor:
    found: Monitor = request.app.state.monitor
    return found


Mon = Annotated[Monitor, Depends(monitor)]


def attach(state: Any, celery: GedragCelery, *, embedded: bool) -> Monitor:
    """The monitor of the API process whose app ``state`` holds the runtime; the daily job on
    ``celery`` (and its ticker when the worker runs in this process)."""
    rt: Runtime = state.runtime

    def production() -> tuple[str | None, QA]:
        qa = current_qa(state)
        return getattr(state, "qa_release", None), qa

    built = Monitor(rt, production=production, qa_for=lambda rid: release_qa(state, rid))
    register_daily(celery)
    if embedded:
        built.ticker = tasks.DailyTicker(celery, rt.settings.monitoring.daily_at).start()
    return built


def register_daily(celery: GedragCelery) -> None:
    """The daily job (purge, drift reports) on ``celery``: `gedrag worker --beat` runs it."""
    tasks.register(
        celery, lambda: daily(celery.runtime), daily_at=celery.settings.monitoring.daily_at
    )


# -- schemas ------------------------------------------------------------------------------


class TraceSummary(BaseModel):
    id: str
    created_at: datetime
    route: str
    caller: str
    release_id: str | None
    arm: Arm
    experiment_id: str | None
    question: str
    language: str
    refused: bool
    latency_ms: float
    top_score: float | None
    citations_dropped: int
    rating: Literal["up", "down"] | None
    answer: str | None = Field(description="The answer's first 300 characters.")


class TracesPage(BaseModel):
    items: list[TraceSummary]
    next_cursor: str | None


class TracePublic(BaseModel):
    """A whole trace: its columns, its feedback, and what it was made of (``passages`` with
    per-stage ``stages`` scores and ranks, ``used``, ``answer`` with ``citations``, ``draft``
    and ``dropped`` markers, ``timings_ms``, ``tokens``, ``replay`` inputs...)."""

    model_config = ConfigDict(extra="allow")

    id: str
    created_at: datetime
    route: str
    caller: str
    release_id: str | None
    arm: Arm
    question: str
    refused: bool
    feedback: dict[str, Any] | None


class RetentionPublic(BaseModel):
    retention_days: int = Field(ge=1, le=3650)
    default: bool = Field(default=False, description="The platform's default, not the tenant's.")


class RetentionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention_days: int = Field(ge=1, le=3650)


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(
        default=None, description="Start of the last window (default: window_days ago)."
    )
    reference_since: datetime | None = Field(
        default=None, description="Start of the reference window (default: reference_days before)."
    )


class ExperimentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[\w.-]+$",
        description="The challenger: a release id or name, or one shipped with gedrag.",
    )
    mode: Mode = "shadow"
    share: float = Field(default=0.1, gt=0, le=0.5, description="canary: the callers' share.")


class ExperimentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode
    share: float = Field(default=0.1, gt=0, le=0.5)


class ExperimentPublic(BaseModel):
    id: str
    release_id: str = Field(description="The challenger.")
    champion_id: str | None = Field(description="Production when it started.")
    mode: Mode
    share: float
    state: Literal["running", "rolled_back", "promoted", "stopped"]
    reason: str
    canary_since: datetime | None
    created_at: datetime
    updated_at: datetime
    online: dict[str, Any] | None = Field(
        default=None,
        description="The online comparison: shadow answers paired with production's, the "
        "canary's arms, the guardrails, and what blocks a promotion.",
    )


class PromoteFromCanary(BaseModel):
    suite: str | None = Field(default=None, description="The gate's suite (policy default).")


# -- traces -------------------------------------------------------------------------------


def trace_filter(
    release: Annotated[str | None, Query(description="Release id.")] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    refused: bool | None = None,
    feedback: FeedbackFilter | None = None,
    arm: Arm | None = None,
    experiment: str | None = None,
) -> TraceFilter:
    return TraceFilter(
        release_id=release,
        since=since,
        until=until,
        refused=refused,
        feedback=feedback,
        arm=arm,
        experiment_id=experiment,
    )


Filter = Annotated[TraceFilter, Depends(trace_filter)]


def summary(r: TraceRecord) -> TraceSummary:
    answer = r.data.get("answer")
    return TraceSummary(
        id=r.id,
        created_at=r.created_at,
        route=r.route,
        caller=r.caller,
        release_id=r.release_id,
        arm=r.arm,
        experiment_id=r.experiment_id,
        question=r.question,
        language=r.language,
        refused=r.refused,
        latency_ms=r.latency_ms,
        top_score=r.top_score,
        citations_dropped=r.citations_dropped,
        rating=r.feedback.rating if r.feedback else None,
        answer=answer["text"][:300] if answer else None,
    )


@router.get("/traces", response_model=TracesPage)
def list_traces(
    tenant: Caller,
    mon: Mon,
    flt: Filter,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TracesPage:
    """The tenant's traces, newest first: filter by release, time, refusal, feedback (``up``,
    ``down``, ``rated``, ``unrated``), arm or experiment; pass ``next_cursor`` back."""
    page = mon.rt.catalog.traces.page(tenant.id, flt, cursor=cursor, limit=limit)
    return TracesPage(items=[summary(r) for r in page.items], next_cursor=page.next_cursor)


@router.get(
    "/traces/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def export_traces(tenant: Caller, mon: Mon, flt: Filter) -> StreamingResponse:
    """Every matching trace, whole, one JSON object per line (newest first)."""

    def lines() -> Iterator[str]:
        for r in mon.rt.catalog.traces.iterate(tenant.id, flt):
            yield json.dumps(trace_json(r), ensure_ascii=False) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="traces.jsonl"'},
    )


@router.get("/traces/settings", response_model=RetentionPublic)
def get_retention(tenant: Caller, mon: Mon) -> RetentionPublic:
    """How many days the tenant's traces are kept."""
    own = mon.rt.catalog.traces.retention(tenant.id)
    if own is None:
        return RetentionPublic(retention_days=mon.settings.retention_days, default=True)
    return RetentionPublic(retention_days=own)


@router.put("/traces/settings", response_model=RetentionPublic)
def set_retention(body: RetentionUpdate, tenant: Caller, mon: Mon) -> RetentionPublic:
    """The tenant's own retention (the daily job purges older traces)."""
    mon.rt.catalog.traces.set_retention(tenant.id, body.retention_days)
    return RetentionPublic(retention_days=body.retention_days)


def once_written(mon: Monitor, call: Callable[[], T]) -> T:
    """``call``, and once more after the trace writer has written what it holds when the trace
    is not found: an answer's trace reaches the catalog up to GEDRAG_MONITORING__LINGER_S after
    the answer, and a user may rate it (or open it) before."""
    try:
        return call()
    except NotFound:
        mon.writer.flush(WRITTEN_WAIT_S)
        return call()


@router.get("/traces/{trace_id}", response_model=TracePublic)
def get_trace(trace_id: str, tenant: Caller, mon: Mon) -> dict[str, Any]:
    return trace_json(once_written(mon, lambda: mon.rt.catalog.traces.get(tenant.id, trace_id)))


def rate(mon: Monitor, tenant: Tenant, trace_id: str, body: FeedbackCreate) -> TraceRecord:
    """Record feedback on an answer (and re-check its canary's guardrails)."""
    feedback = Feedback(body.rating, body.reason, body.corrected_answer, utcnow())
    record = once_written(
        mon, lambda: mon.rt.catalog.traces.set_feedback(tenant.id, trace_id, feedback)
    )
    mon.feedback_recorded(record)
    return record


@router.post("/traces/{trace_id}/feedback", response_model=TracePublic)
def rate_answer(trace_id: str, body: FeedbackCreate, tenant: Caller, mon: Mon) -> dict[str, Any]:
    """Thumbs up or down, a reason, and optionally the answer it should have been; a new
    rating replaces the previous one."""
    return trace_json(rate(mon, tenant, trace_id, body))


@router.post("/traces/{trace_id}/replay")
def replay_trace(trace_id: str, tenant: Caller, mon: Mon) -> dict[str, Any]:
    """Ask the trace's question again under the same release; says which recorded inputs
    changed since (configuration, collection, models, code, document versions) and what
    differs in the passages and the answer."""
    return mon.replay(once_written(mon, lambda: mon.rt.catalog.traces.get(tenant.id, trace_id)))


# -- drift reports ------------------------------------------------------------------------


@router.post("/monitoring/report")
def make_report(tenant: Caller, mon: Mon, body: ReportRequest | None = None) -> dict[str, Any]:
    """A drift report of the last window against the reference window and the production
    release's suite, stored, with its alerts raised (log, metrics, webhook)."""
    body = body or ReportRequest()
    return mon.report(tenant.id, since=body.since, reference_since=body.reference_since)


def _latest(mon: Monitor, tenant: Tenant) -> dict[str, Any]:
    stored = mon.rt.catalog.traces.latest_report(tenant.id)
    if stored is None:
        raise NotFound("no drift report yet: POST /v1/monitoring/report makes one")
    return {**stored.data, "id": stored.id}


@router.get("/monitoring/report")
def latest_report(tenant: Caller, mon: Mon) -> dict[str, Any]:
    """The newest drift report (the daily job's, or the last one asked for)."""
    return _latest(mon, tenant)


@router.get("/monitoring/report.html", response_class=HTMLResponse)
def latest_report_html(tenant: Caller, mon: Mon) -> HTMLResponse:
    """The newest drift report as a page with its plots (inline SVG)."""
    return HTMLResponse(to_html(_latest(mon, tenant)))


# -- experiments --------------------------------------------------------------------------


def experiment_public(e: Experiment, online: dict[str, Any] | None = None) -> ExperimentPublic:
    return ExperimentPublic(
        id=e.id,
        release_id=e.release_id,
        champion_id=e.champion_id,
        mode=e.mode,
        share=e.share,
        state=e.state,
        reason=e.reason,
        canary_since=e.canary_since,
        created_at=e.created_at,
        updated_at=e.updated_at,
        online=online,
    )


@router.post("/experiments", response_model=ExperimentPublic, status_code=201)
def start_experiment(body: ExperimentCreate, tenant: Caller, mon: Mon) -> ExperimentPublic:
    """Try a challenger release on this tenant's traffic: ``shadow`` (answers computed and
    traced, not shown) or ``canary`` (``share`` of the callers, sticky per caller). One at a
    time (409 while another runs)."""
    exp = mon.experiments.start(tenant.id, body.release, body.mode, body.share)
    return experiment_public(exp)


@router.get("/experiments", response_model=list[ExperimentPublic])
def list_experiments(tenant: Caller, mon: Mon) -> list[ExperimentPublic]:
    return [experiment_public(e) for e in mon.rt.catalog.traces.experiments(tenant.id)]


@router.get("/experiments/{experiment_id}", response_model=ExperimentPublic)
def get_experiment(experiment_id: str, tenant: Caller, mon: Mon) -> ExperimentPublic:
    """The experiment with its online comparison."""
    exp = mon.rt.catalog.traces.experiment(tenant.id, experiment_id)
    policy = mon.rt.settings.evaluation.policy
    return experiment_public(exp, mon.experiments.evidence(exp, policy))


@router.patch("/experiments/{experiment_id}", response_model=ExperimentPublic)
def change_experiment(
    experiment_id: str, body: ExperimentUpdate, tenant: Caller, mon: Mon
) -> ExperimentPublic:
    """From shadow to canary (or back), or another share."""
    exp = mon.experiments.set_mode(tenant.id, experiment_id, body.mode, body.share)
    return experiment_public(exp)


@router.post("/experiments/{experiment_id}/stop", response_model=ExperimentPublic)
def stop_experiment(experiment_id: str, tenant: Caller, mon: Mon) -> ExperimentPublic:
    return experiment_public(mon.experiments.stop(tenant.id, experiment_id))


@router.post("/experiments/{experiment_id}/promote", response_model=PromotionPublic)
def promote_experiment(
    experiment_id: str,
    tenant: Caller,
    mon: Mon,
    request: Request,
    body: PromoteFromCanary | None = None,
) -> dict[str, Any]:
    """Promote the canary's release through the promotion gate (its offline runs) with its
    online evidence; refused with the reasons when either shows a regression. For the
    tenants of ``GEDRAG_EVALUATION__PROMOTERS`` only."""
    settings = mon.rt.settings
    if tenant.name not in settings.evaluation.promoters:
        raise Forbidden(
            f"tenant {tenant.name!r} may not promote releases "
            "(GEDRAG_EVALUATION__PROMOTERS names those that may)"
        )
    decision = mon.experiments.promote(
        tenant.id,
        experiment_id,
        suite=body.suite if body else None,
        policy_path=settings.evaluation.policy,
        decided_by=f"api:{tenant.name}",
    )
    if decision.promoted:
        request.app.state.release_checked_at = None  # serving re-reads production at once
    return evals.decision_public(decision)
