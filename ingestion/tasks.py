"""The Celery executor of the ingestion service: thin tasks that take ids, call the service's
steps, and retry transient errors.

An ingestion runs in two stages (progressive indexing, issue #22). First one task: parse and
chunk, the version's sparse vectors and its graph, then readers switch to it (``searchable``):
``IngestionService.first_stage``. Then ``vectors → finalize`` on the embedding queue: its
dense and sentence vectors complete the same points, and it is ``ready``. Job state lives in
the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import chain
from celery.exceptions import Reject
from celery.schedules import crontab
from kombu.exceptions import OperationalError as KombuOperationalError

from core import observability
from core.domain import Job, JobKind
from core.errors import GedragError, Interrupted, StoreUnavailable, TransientError
from core.settings import Settings
from ingestion.limits import task_time_limits
from ingestion.records import RecordsService
from ingestion.service import IngestionService

if TYPE_CHECKING:
    from ingestion.celery_app import GedragCelery

log = logging.getLogger(__name__)

INGEST = "gedrag.ingest_version"
INDEX_VECTORS = "gedrag.index_vectors"
FINALIZE = "gedrag.finalize_version"
DELETE = "gedrag.delete_document"
SYNC = "gedrag.sync_document"
RECORDS_DAILY = "gedrag.records_daily"

Step = Callable[[str], Any]


def embedding_queue(settings: Settings) -> str:
    """The queue of the embedding step (``gedrag.embed``): the first stage's steps (parse,
    terms, graph, publish) never wait behind a backlog of embeddings."""
    return f"{settings.broker.queue}.embed"


class CeleryExecutor:
    """Queues a job's steps on the broker; the workers run them."""

    def __init__(self, app: GedragCelery) -> None:
        self.app = app

    def submit(self, job: Job) -> None:
        self._send(INGEST if job.kind == JobKind.INGEST else DELETE, job_id=job.id)

    def sync(self, tenant_id: str, document_id: str) -> None:
        self._send(SYNC, tenant_id=tenant_id, document_id=document_id)

    def _send(self, task: str, **kwargs: str) -> None:
        try:
            self.app.send_task(task, kwargs=kwargs)
        except KombuOperationalError as exc:
            raise StoreUnavailable(f"job queue unavailable: {exc}") from exc


def named(what: str, exc: GedragError) -> str:
    """``what: detail`` (the first stage's errors name their store themselves)."""
    return f"{what}: {exc.detail}" if what else exc.detail


def _tenant_of(service: IngestionService, job_id: str) -> str | None:
    """The job's tenant id, for the log context (None when the job is gone or unreachable)."""
    try:
        return service.rt.catalog.jobs.load(job_id).tenant_id
    except GedragError:
        return None


def register(app: GedragCelery) -> None:
    """Attach gedrag's tasks to ``app`` (one Celery app per settings, so tests can have many)."""
    broker = app.settings.broker
    embed_queue = embedding_queue(app.settings)

    def run(task: Any, step: Step, job_id: str, what: str) -> Any:
        """Run a step; retry transient errors with backoff, then fail the job naming ``what``.

        Never raises for a failed job: the task that follows (``finalize``, or the first
        stage's clean-up) removes the partial writes.
        """
        service = app.ingestion
        with observability.bound(job_id=job_id, tenant=_tenant_of(service, job_id)):
            return _run(task, service, step, job_id, what)

    def _run(task: Any, service: IngestionService, step: Step, job_id: str, what: str) -> Any:
        try:
            return step(job_id)
        except Interrupted:
            # The worker is stopping (SIGTERM): the job goes back to the queue, not to failed.
            # Redis delivers the rejected message to another worker; the embedded broker's
            # queue dies with the process and the catalog's queued job is sent again at start.
            service.requeue(job_id)
            if not app.settings.embedded_broker:
                raise Reject("worker stopping", requeue=True) from None
            return None
        except TransientError as exc:
            if task.request.retries >= broker.max_retries:
                attempts = task.request.retries + 1
                service.fail_job(job_id, f"{named(what, exc)} ({attempts} attempts)")
                return None
            delay = min(2**task.request.retries, broker.retry_backoff_max_s)
            log.warning("transient failure, retrying", extra={"job_id": job_id, "delay_s": delay})
            service.note_retry(job_id, named(what, exc))
            raise task.retry(exc=exc, countdown=delay) from exc
        except GedragError as exc:
            service.fail_job(job_id, named(what, exc))
        except Exception as exc:
            log.exception("step crashed", extra={"job_id": job_id, "step": what})
            crash = GedragError(f"internal error {type(exc).__name__}: {exc}")
            service.fail_job(job_id, named(what, crash))
        return None

    # shared=False: Celery's default adds every task to every app in the process, which would
    # bind one app's task name to another app's runtime (tests run several apps side by side).
    options: dict[str, Any] = {"bind": True, "max_retries": None, "shared": False}
    # Celery time limits from the budgets (GEDRAG_LIMITS__*): enforced by prefork pools; the
    # thread and solo pools gedrag runs rely on the parse child and the deadlines instead.
    limits = {
        step: {"soft_time_limit": soft, "time_limit": hard}
        for step, (soft, hard) in task_time_limits(app.settings.limits).items()
    }

    def embed_then_finalize(job_id: str) -> None:
        """The second stage: embedding, on its own queue (``<queue>.embed``: a GPU worker or
        the model's one worker can take only these), then ``ready``."""
        kwargs = {"job_id": job_id}
        # finalize on the same queue: a version is ready when embedded, not after every first
        # stage queued behind it
        chain(
            app.signature(INDEX_VECTORS, kwargs=kwargs, queue=embed_queue),
            app.signature(FINALIZE, kwargs=kwargs, queue=embed_queue),
        ).apply_async()

    @app.task(name=INGEST, **options, **limits["first_stage"])  # type: ignore[untyped-decorator]
    def ingest_version(self: Any, *, job_id: str) -> None:
        service = app.ingestion
        # A job requeued after it became searchable resumes at its embedding.
        if service.is_published(job_id) or run(self, service.first_stage, job_id, ""):
            embed_then_finalize(job_id)
        else:
            service.discard_failed(job_id)

    @app.task(name=INDEX_VECTORS, **options, **limits["vectors"])  # type: ignore[untyped-decorator]
    def index_vectors(self: Any, *, job_id: str) -> None:
        run(self, app.ingestion.index_vectors, job_id, "embedding (vector store)")

    @app.task(name=FINALIZE, **options, **limits["finalize"])  # type: ignore[untyped-decorator]
    def finalize_version(self: Any, *_results: Any, job_id: str) -> None:
        run(self, app.ingestion.finalize, job_id, "activation")

    @app.task(name=DELETE, **options, **limits["delete"])  # type: ignore[untyped-decorator]
    def delete_document(self: Any, *, job_id: str) -> None:
        run(self, app.ingestion.delete, job_id, "deletion")

    @app.task(
        name=SYNC,
        bind=True,
        shared=False,
        autoretry_for=(TransientError,),
        retry_backoff=True,
        max_retries=broker.max_retries,
    )  # type: ignore[untyped-decorator]
    def sync_document(self: Any, *, tenant_id: str, document_id: str) -> None:
        app.ingestion.sync(tenant_id, document_id)

    # Records: trash expiry, retention, unfinished purges resumed; daily under Celery beat
    # (`gedrag worker --beat`), at GEDRAG_RECORDS__DAILY_AT (UTC).
    @app.task(
        name=RECORDS_DAILY,
        bind=True,
        shared=False,
        autoretry_for=(TransientError,),
        retry_backoff=True,
        max_retries=broker.max_retries,
    )  # type: ignore[untyped-decorator]
    def records_daily(self: Any) -> dict[str, Any]:
        return RecordsService(app.ingestion, CeleryExecutor(app)).run_daily().to_dict()

    hour, minute = app.settings.records.daily_at.split(":")
    app.conf.beat_schedule = {
        "gedrag-records-daily": {
            "task": RECORDS_DAILY,
            "schedule": crontab(hour=int(hour), minute=int(minute)),
        }
    }
    app.conf.timezone = "UTC"
