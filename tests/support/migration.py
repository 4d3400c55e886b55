"""Helpers of the store-migration tests: a small corpus and an app started on given settings
(stopped and restarted across a migration, as an operator does)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from fastapi.testclient import TestClient

from core.errors import Conflict
from core.settings import Settings
from ingestion.runtime import Runtime
from serving.app import create_app
from tests.e2e.conftest import Api

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
            catalog.create_tenant("acme")
        key, _ = catalog.create_api_key("acme")
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
