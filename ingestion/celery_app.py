"""The one Celery app of gedrag and the embedded worker.

Production: a Redis broker by URL and separate ``gedrag worker`` processes. Embedded (the
default): the ``memory://`` broker, whose queues live in this process, and a real Celery worker on
threads inside the ``gedrag up`` process, so a new user needs no Redis. Job state lives in the
catalog, never in a result backend.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from celery import Celery, signals

from core.settings import Settings
from ingestion.service import IngestionService
from runtime import Runtime

log = logging.getLogger(__name__)


@signals.setup_logging.connect  # type: ignore[untyped-decorator]
def _keep_gedrag_logging(**_: Any) -> None:
    """Logging is gedrag's (``core.observability.configure_logging``, JSON in production).
    With a receiver on this signal Celery leaves it alone; without one, a worker starting
    resets the root logger's level (the embedded one to WARNING, hiding the access log)."""


_apps: weakref.WeakSet[GedragCelery] = weakref.WeakSet()


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _prestart_parser(sender: Any = None, **_: Any) -> None:
    """A worker that starts a parse child at once: the first document does not wait for the
    parsers to load (~5 s; ~18 s on a loaded machine)."""
    app = getattr(sender, "app", None)
    if isinstance(app, GedragCelery):
        app.ingestion.indexer.parser.prestart()


@signals.worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _interrupt_ingestion(**_: Any) -> None:
    """SIGTERM to a `gedrag worker`: stop what runs now instead of waiting for it (a parse may
    run for its whole budget); the interrupted jobs go back to the queue."""
    for app in list(_apps):
        app.interrupt()


class GedragCelery(Celery):  # type: ignore[misc]
    """A Celery app that carries the settings and, lazily, the runtime its tasks act on."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        super().__init__(
            "gedrag",
            broker=settings.broker.url,
            backend=settings.result_backend,
            set_as_current=False,
        )
        self.settings = settings
        self._runtime = runtime
        self._ingestion: IngestionService | None = None
        self._runtime_lock = threading.Lock()
        self.conf.update(
            task_default_queue=settings.broker.queue,
            task_serializer="json",
            accept_content=["json"],
            # Tasks are idempotent, so acknowledge after the work: a killed worker's task is
            # delivered again instead of lost.
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            # Model-holding workers take one task at a time; others stay queued for peers.
            worker_prefetch_multiplier=1,
            worker_redirect_stdouts=False,
            worker_hijack_root_logger=False,
            broker_connection_retry_on_startup=True,
            task_ignore_result=True,
            broker_transport_options={
                "visibility_timeout": settings.broker.visibility_timeout_s,
                # The in-process broker is polled, 1 s by default: each document makes three
                # hops (first stage, embedding, finalize). Polling memory costs nothing.
                **({"polling_interval": 0.02} if settings.embedded_broker else {}),
            },
            result_backend_transport_options={
                "visibility_timeout": settings.broker.visibility_timeout_s
            },
        )
        from ingestion import tasks  # tasks import this module's types

        tasks.register(self)
        _apps.add(self)

    def interrupt(self) -> None:
        """Interrupt the running ingestion steps of this process (their jobs are requeued)."""
        with self._runtime_lock:
            ingestion = self._ingestion
        if ingestion is not None:
            ingestion.close()

    @property
    def runtime(self) -> Runtime:
        return self.ingestion.rt

    @property
    def ingestion(self) -> IngestionService:
        """The service whose steps the tasks run (built on first use, with the runtime)."""
        with self._runtime_lock:
            if self._ingestion is None:
                self._ingestion = IngestionService(
                    self._runtime if self._runtime is not None else Runtime.build(self.settings)
                )
            return self._ingestion


def start_embedded_worker(app: GedragCelery) -> Any:
    """Run a Celery worker on threads in this process, on both queues (the first stage's and
    the embeddings'); returns the worker (``.stop()``)."""
    from ingestion.tasks import embedding_queue

    worker = app.Worker(
        pool="threads",
        queues=[app.settings.broker.queue, embedding_queue(app.settings)],
        concurrency=app.settings.broker.embedded_concurrency,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
        quiet=True,
    )
    thread = threading.Thread(target=worker.start, name="gedrag-worker", daemon=True)
    thread.start()
    log.info("embedded worker started", extra={"queue": app.settings.broker.queue})
    return worker
