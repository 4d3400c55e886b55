from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import BrokerSettings, Settings
from serving.app import create_app


@dataclass
class Api:
    """A running app (with its embedded worker) and one API key per tenant."""

    client: TestClient
    settings: Settings
    keys: dict[str, str]

    def h(self, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    def upload(self, name: str, data: bytes, tenant: str = "acme", **form: Any) -> Any:
        return self.client.post(
            "/v1/documents", headers=self.h(tenant), files={"file": (name, data)}, data=form
        )

    def wait(self, job_id: str, tenant: str = "acme", timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.client.get(
                f"/v1/jobs/{job_id}", headers=self.h(tenant)
            ).json()
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s: {job}")

    def purge(self, document_id: str, tenant: str = "acme") -> dict[str, Any]:
        """Delete a document for good: to the trash, then purged at once (the tests' keys are
        records administrators); returns the purge job once finished."""
        trashed = self.client.delete(f"/v1/documents/{document_id}", headers=self.h(tenant))
        assert trashed.status_code == 200, trashed.text
        purged = self.client.delete(f"/v1/trash/{document_id}", headers=self.h(tenant))
        assert purged.status_code == 202, purged.text
        return self.wait(purged.json()["job_id"], tenant)

    def counts(self) -> dict[str, int]:
        """Rows per table and original files on disk: what a rejected request must not change."""
        rt = self.client.app.state.runtime  # type: ignore[attr-defined]
        import sqlalchemy as sa

        with rt.catalog.engine.connect() as conn:
            rows = {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("documents", "document_versions", "jobs", "document_tags")
            }
        rows["blobs"] = len(rt.blobs.all())
        return rows


@pytest.fixture
def make_api(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Api]]:
    clients: list[TestClient] = []

    def make(catalog_url: str | None = None, **overrides: Any) -> Api:
        return _started(make_settings(catalog_url, **overrides), clients)

    yield make
    _stop(clients)


@pytest.fixture(scope="module")
def make_api_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Api]]:
    """Like ``make_api`` but shared by a module's tests (ingest once, ask many times)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> Api:
        root = tmp_path_factory.mktemp("api")
        settings = Settings(
            data_dir=root / "var",
            broker=BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}"),
            **overrides,
        )
        return _started(settings, clients)

    yield make
    _stop(clients)


def _started(settings: Settings, clients: list[TestClient]) -> Api:
    """Start the app (and its embedded worker) with two tenants, each with a key."""
    client = TestClient(create_app(settings))
    client.__enter__()
    clients.append(client)
    catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
    keys: dict[str, str] = {}
    for tenant in ("acme", "globex"):
        catalog.tenants.create(tenant)
        keys[tenant], _ = catalog.tenants.create_key(tenant)
    return Api(client, settings, keys)


def _stop(clients: list[TestClient]) -> None:
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(catalog_url: str, make_api: Callable[..., Api]) -> Api:
    # catalog_url first: fixtures tear down in reverse, so the app (and its worker) stops
    # before the PostgreSQL schema it uses is dropped.
    return make_api(catalog_url)
