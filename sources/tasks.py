"""The sources on Celery: a beat entry that starts the rounds of due sources every
``GEDRAG_SOURCES__TICK_S`` (`gedrag worker --beat`), the task that runs one round, and, in the
embedded mode (`gedrag up`, no beat process), a ticker thread that sends the same tick.

Tasks are thin: they take ids and call :class:`sources.sync.SyncService`. A round's task is
never retried by Celery: the round itself records a failure and the schedule tries again with
backoff; a round lost with its worker frees its source when the lease expires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, signals
from kombu.exceptions import OperationalError as KombuOperationalError

from core.errors import StoreUnavailable
from sources.sync import SyncService

log = logging.getLogger(__name__)

TICK = "gedrag.sources_tick"
SYNC = "gedrag.sources_sync"
BEAT_ENTRY = "gedrag-sources-tick"


def sender(app: Celery) -> Callable[[str, str], None]:
    """``send(source_id, token)``: queue one round of a source."""

    def send(source_id: str, token: str) -> None:
        try:
            app.send_task(SYNC, kwargs={"source_id": source_id, "token": token})
        except KombuOperationalError as exc:
            raise StoreUnavailable(f"job queue unavailable: {exc}") from exc

    return send


def register(app: Celery, service: Callable[[], SyncService], *, tick_s: float) -> None:
    """Attach the sources' tasks and beat entry (every ``tick_s``) to ``app``; ``service``
    gives the sync service over the app's ingestion service and executor."""
    send = sender(app)

    @app.task(name=TICK, shared=False, ignore_result=True)  # type: ignore[untyped-decorator]
    def sources_tick() -> int:
        return service().dispatch_due(send)

    @app.task(name=SYNC, shared=False, ignore_result=True)  # type: ignore[untyped-decorator]
    def sources_sync(*, source_id: str, token: str) -> dict[str, Any] | None:
        summary = service().run_round(source_id, token)
        return None if summary is None else summary.to_dict()

    schedule = dict(app.conf.beat_schedule or {})
    schedule[BEAT_ENTRY] = {"task": TICK, "schedule": tick_s}
    app.conf.beat_schedule = schedule


class Ticker:
    """The embedded mode's beat: sends the tick every ``tick_s`` from a daemon thread until
    :meth:`stop`, or until the worker of its app shuts down."""

    def __init__(self, app: Celery, tick_s: float) -> None:
        self.app = app
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gedrag-sources-tick", daemon=True)
        signals.worker_shutdown.connect(self._on_shutdown, weak=False)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.app.send_task(TICK)
            except KombuOperationalError:
                log.warning("sources tick not sent: the job queue is unavailable")

    def _on_shutdown(self, sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is self.app:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        signals.worker_shutdown.disconnect(self._on_shutdown)
