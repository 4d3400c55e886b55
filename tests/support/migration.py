"""Helpers of the store-migration tests: a small corpus and an app started on given settings
(stopped and restarted across a migration, as an operator does)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Generic, TypeVar

import pytest
from fastapi.testclient import TestClient

from core.errors import Conflict
from core.settings import Settings
from infra.migrate import vectors
from ingestion.indexing import Indexer
from runtime import Runtime
from serving.app import create_app
from tests.e2e.conftest import Api

T = TypeVar("T")

DOCS = {
    "contract": b"""# Maintenance contract

## Duration

The maintenance contract CTR-2024-0042 between ACME Industries and the city of Lyon runs for
three years from March 3, 2025.

## Price

The annual price of the maintenance contract is 12,500 EUR, paid every January.
""",
    "handbook": b"""# Safety handbook

## Ladders

Ladders must be inspected every six months by the site safety officer of ACME Industries.

## Helmets

Helmets are mandatory in every workshop of the Lyon plant.
""",
    "memo": b"""# Travel memo

Travel to Paris for the FAA audit is booked by Globex Travel. The invoice INV-7731 of 2,300 EUR
is due on April 2, 2025.
""",
    "notes": b"""# Board notes

The board of ACME Industries met in Lyon on May 5, 2025 and approved the budget of 3 million EUR.
""",
}
QUESTIONS = (
    "What is the annual price of the maintenance contract?",
    "How often must ladders be inspected?",
)


@contextmanager
def running(settings: Settings) -> Iterator[Api]:
    """The app (API + embedded worker) on these settings, with tenant acme and a fresh key."""
    with TestClient(create_app(settings)) as client:
        catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
        with suppress(Conflict):
            catalog.tenants.create("acme")
        key, _ = catalog.tenants.create_key("acme")
        yield Api(client, settings, {"acme": key})


def runtime(api: Api) -> Runtime:
    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def ingest(api: Api, name: str, data: bytes) -> str:
    up = api.upload(f"{name}.md", data).json()
    assert api.wait(up["job_id"])["state"] == "succeeded"
    return str(up["document_id"])


def answers(api: Api) -> list[tuple[str, list[str]]]:
    out = []
    for q in QUESTIONS:
        body = api.client.post("/v1/ask", headers=api.h(), json={"question": q}).json()
        out.append((body["answer"], [p["chunk_id"] for p in body["passages"]]))
    return out


class QueryingClient(Generic[T]):
    """A client asking ``/v1/search`` over and over while a migration runs beside it.

    It records each failed query, what ``probe`` (a direct look at the store) saw after each
    query, and when each query returned. Entering waits until it has queried 5 times (its first
    query loads the model); leaving stops it, also when the migration raised."""

    def __init__(
        self,
        api: Api,
        probe: Callable[[], T],
        query: str = "annual price of the maintenance contract",
    ) -> None:
        self.api, self.probe, self.query = api, probe, query
        self.failures: list[str] = []
        self.seen: list[T] = []
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            r = self.api.client.post("/v1/search", headers=self.api.h(), json={"query": self.query})
            if r.status_code != 200 or not r.json()["passages"]:
                self.failures.append(f"{r.status_code}: {r.text[:200]}")
            self.seen.append(self.probe())
            self.samples.append(time.monotonic())

    def __enter__(self) -> QueryingClient[T]:
        self._thread.start()
        self.wait_after(0.0, timeout=120)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait_after(self, moment: float, n: int = 5, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.after(moment) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    def before(self, moment: float) -> int:
        return sum(t < moment for t in self.samples)

    def after(self, moment: float) -> int:
        return sum(t > moment for t in self.samples)


def build_interrupted_then_resumed(rt: Runtime, indexer: Indexer, documents: int) -> None:
    """Build with one document per batch, crash after the first batch, build again: the second
    build resumes after the first document and reaches the last."""

    def crash_after_first_batch(done: int, _total: int | None) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vectors.build(rt, indexer, batch_size=1, progress=crash_after_first_batch)
    seen: list[int] = []
    vectors.build(rt, indexer, batch_size=1, progress=lambda done, _t: seen.append(done))
    assert seen[0] == 1 and seen[-1] == documents  # resumed after the first document
