"""Releases and evaluation runs over HTTP (platform-level: any valid key reads; only the
tenants named in ``GEDRAG_EVALUATION__PROMOTERS`` may promote or start an evaluation).

An evaluation started here runs in a background thread of this process, in the harness's own
namespace (``<data dir>/eval/``: its own catalog, vector and graph stores, tenant ``eval``), so it
never reads or writes a tenant's documents.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from core.access import Scope
from core.domain import Tenant
from core.errors import Conflict, Forbidden, NotFound
from evaluation import runner, suites
from evaluation import service as evals
from evaluation.release import Release, load_release, packaged
from runtime import Runtime
from serving import auth
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
log = logging.getLogger(__name__)


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


class RunCreate(BaseModel):
    """An evaluation to start: names only, never file paths (the server reads no file a caller
    names)."""

    model_config = ConfigDict(extra="forbid")

    release: str = Field(
        default="default",
        min_length=1,
        max_length=200,
        pattern=r"^[\w.-]+$",
        description="A release id or name, or the name of one shipped with gedrag (`default`).",
    )
    suite: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[\w.-]+$",
        description="A suite shipped with gedrag (`GET /v1/eval/suites`).",
    )


class SuitePublic(BaseModel):
    name: str
    description: str
    available: bool = Field(description="Its data is on this server: a run can start.")


class PromotionPublic(BaseModel):
    promoted: bool
    release_id: str
    previous: str | None = Field(description="Production before this decision.")
    reasons: list[str] = Field(description="Why it was refused (empty when promoted).")
    decision_id: str


@dataclass
class Background:
    """The one evaluation this process runs at a time: a run ingests a whole corpus with its
    own embedder, and two at once would each take twice as long on a 2-core server."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    run_id: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)

    def report(self, stage: str, done: int, total: int) -> None:
        self.progress = {"stage": stage, "done": done, "total": total}


_BACKGROUND = threading.Lock()  # two first requests must not create two Background objects


def background(request: Request) -> Background:
    with _BACKGROUND:
        bg: Background | None = getattr(request.app.state, "evaluations", None)
        if bg is None:
            bg = request.app.state.evaluations = Background()
    return bg


def _may_administer(request: Request, tenant: Tenant, action: str) -> None:
    """The promote scope (issue #19): a user with the promoter role, or a key of a tenant
    GEDRAG_EVALUATION__PROMOTERS names (keys from before people existed)."""
    if not auth.caller(request).can(Scope.PROMOTE):
        raise Forbidden(
            f"tenant {tenant.name!r} may not {action} with this caller (the promoter role "
            "grants it; to keys from before users existed, GEDRAG_EVALUATION__PROMOTERS)"
        )


def _release(store: EvalStore, ref: str) -> Release:
    """A stored release by id or name, else the release file shipped under that name."""
    try:
        return evals.as_release(store.get_release(ref))
    except NotFound:
        shipped = packaged(ref)
        if shipped is None:
            raise NotFound(
                f"no release {ref!r} (give a release id or name, or `default`)"
            ) from None
        return load_release(shipped)


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
    _may_administer(request, tenant, "promote releases")
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


@router.get("/eval/suites", response_model=list[SuitePublic])
def list_suites(_: Caller) -> list[dict[str, Any]]:
    """The suites shipped with gedrag, and whether their data is on this server."""
    out = []
    for name in suites.known_suites():
        d = suites.descriptor(name)
        # Shipped descriptors name their folders from the repository root (see load_suite).
        corpus = suites.REPO_ROOT / (d.corpus_path or d.path) / d.corpus
        out.append({"name": name, "description": d.description, "available": corpus.is_file()})
    return out


@router.post("/eval/runs", status_code=202)
def start_run(body: RunCreate, tenant: Caller, store: Store, request: Request) -> dict[str, Any]:
    """Start evaluating a release on a suite; answers at once with the run (state `running`),
    which `GET /v1/eval/runs/{id}` follows (with `progress` while it runs here). One run at a
    time per server: 409 while another runs."""
    rt: Runtime = request.app.state.runtime
    _may_administer(request, tenant, "start evaluations")
    if body.suite not in suites.known_suites():
        raise NotFound(f"no suite named {body.suite!r} (known: {', '.join(suites.known_suites())})")
    release = _release(store, body.release)
    suite = suites.load_suite(body.suite)  # NotFound, with the folder, when its data is absent
    bg = background(request)
    if not bg.lock.acquire(blocking=False):
        raise Conflict(f"an evaluation is already running on this server (run {bg.run_id})")
    try:
        store.save_release(release.id, release.name, release.description, release.config)
        run_id = store.start_run(release.id, suite.name, suite.id, runner.code_version())
        bg.run_id, bg.progress = run_id, {}
        thread = threading.Thread(
            target=_evaluate,
            args=(bg, rt, release, suite, store, run_id),
            name=f"evaluation-{run_id}",
            daemon=True,
        )
        thread.start()
    except BaseException:
        bg.run_id = None
        bg.lock.release()
        raise
    log.info(
        "evaluation started over the API",
        extra={"run_id": run_id, "release_id": release.id, "tenant": tenant.name},
    )
    return {**evals.run_public(store.get_run(run_id), results=False), "progress": {}}


def _evaluate(
    bg: Background,
    rt: Runtime,
    release: Release,
    suite: suites.Suite,
    store: EvalStore,
    run_id: str,
) -> None:
    try:
        runner.run(rt.settings, release, suite, store, progress=bg.report, run_id=run_id)
    except Exception:  # the run is stored as failed, with its cause, by runner.run
        log.exception("evaluation failed", extra={"run_id": run_id})
    finally:
        bg.run_id, bg.progress = None, {}
        bg.lock.release()


@router.get("/eval/runs/{run_id}")
def get_run(run_id: str, _: Caller, store: Store, request: Request) -> dict[str, Any]:
    """The run: state, aggregate scores, latency, and per-question results; while it runs in
    this process, ``progress`` ({stage, done, total})."""
    out = evals.run_public(store.get_run(run_id))
    bg = background(request)
    if bg.run_id == run_id:
        out["progress"] = dict(bg.progress)
    return out


@router.get("/eval/runs/{run_id}/report.html", response_class=HTMLResponse)
def run_report(run_id: str, _: Caller, store: Store) -> HTMLResponse:
    """The self-contained HTML report (plots inline as SVG)."""
    return HTMLResponse(evals.report(store, run_id, "html"))
