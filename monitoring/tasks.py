"""The daily monitoring job on Celery: a beat entry at ``GEDRAG_MONITORING__DAILY_AT`` (UTC,
`gedrag worker --beat`) and, in the embedded mode (`gedrag up`, no beat process), a thread that
sends the same task once a day. The task is thin: it calls :func:`monitoring.service.daily`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from typing import Any

from celery import Celery
from celery.schedules import crontab
from kombu.exceptions import OperationalError as KombuOperationalError

from stores.catalog.models import utcnow

log = logging.getLogger(__name__)

DAILY = "gedrag.monitoring_daily"
BEAT_ENTRY = "gedrag-monitoring-daily"
# The embedded ticker looks at the clock once a minute: the job starts within a minute of
# its time.
TICK_S = 60.0


def register(app: Celery, job: Callable[[], dict[str, Any]], *, daily_at: str) -> None:
    """Attach the daily task and its beat entry to ``app``."""

    @app.task(name=DAILY, shared=False, ignore_result=True)  # type: ignore[untyped-decorator]
    def monitoring_daily() -> dict[str, Any]:
        return job()

    hour, minute = daily_at.split(":")
    schedule = dict(app.conf.beat_schedule or {})
    schedule[BEAT_ENTRY] = {"task": DAILY, "schedule": crontab(hour=int(hour), minute=int(minute))}
    app.conf.beat_schedule = schedule


def due(daily_at: str, last: date | None) -> bool:
    """Whether the daily job should start now: its time of day has passed and it has not run
    today (UTC)."""
    now = utcnow()
    hour, minute = (int(x) for x in daily_at.split(":"))
    return (now.hour, now.minute) >= (hour, minute) and last != now.date()


class DailyTicker:
    """The embedded mode's beat for the daily job. It does not run at start for a day already
    past its time (a restart at noon does not recompute the morning's report)."""

    def __init__(self, app: Celery, daily_at: str) -> None:
        self.app = app
        self.daily_at = daily_at
        self._last: date | None = utcnow().date() if due(daily_at, None) else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gedrag-monitoring", daemon=True)

    def start(self) -> DailyTicker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            if not due(self.daily_at, self._last):
                continue
            try:
                self.app.send_task(DAILY)
                self._last = utcnow().date()
            except KombuOperationalError:
                log.warning("monitoring daily run not sent: the job queue is unavailable")

    def stop(self) -> None:
        self._stop.set()
