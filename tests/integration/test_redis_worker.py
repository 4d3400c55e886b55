"""Production topology on this machine: the API process enqueues on the real Redis broker and a
separate `gedrag worker` process (sharing the PostgreSQL catalog) does the work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import BrokerSettings, Settings
from serving.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_separate_worker_over_redis(
    make_settings: Callable[..., Settings], postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(postgres_url, broker=BrokerSettings(url=redis_url, queue=queue))
    env = {
        **os.environ,
        "GEDRAG_DATA_DIR": str(settings.data_dir),
        "GEDRAG_CATALOG__URL": postgres_url,
        "GEDRAG_BROKER__URL": redis_url,
        "GEDRAG_BROKER__QUEUE": queue,
    }
    with TestClient(create_app(settings)) as client:  # migrates the catalog
        rt = client.app.state.runtime  # type: ignore[attr-defined]
        rt.catalog.tenants.create("acme")
        key, _ = rt.catalog.tenants.create_key("acme")
        auth = {"Authorization": f"Bearer {key}"}
        worker = subprocess.Popen(
            [str(Path(sys.executable).with_name("gedrag")), "worker"],
            env=env,
            stdout=(tmp_path / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            up = client.post(
                "/v1/documents",
                headers=auth,
                files={"file": ("n.md", b"# Note\n\nProcessed by another process.")},
            )
            assert up.status_code == 202
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                job = client.get(f"/v1/jobs/{up.json()['job_id']}", headers=auth).json()
                if job["state"] in ("succeeded", "failed"):
                    break
                time.sleep(0.2)
            assert job["state"] == "succeeded", (job, (tmp_path / "worker.log").read_text()[-3000:])
            trashed = client.delete(f"/v1/documents/{up.json()['document_id']}", headers=auth)
            assert trashed.status_code == 200, trashed.text
            deleted = client.delete(f"/v1/trash/{up.json()['document_id']}", headers=auth)
            assert deleted.status_code == 202, deleted.text
            for _ in range(300):
                if (
                    client.get(f"/v1/jobs/{deleted.json()['id']}", headers=auth).json()["state"]
                    == "succeeded"
                ):
                    break
                time.sleep(0.2)
            assert (
                client.get(f"/v1/documents/{up.json()['document_id']}", headers=auth).status_code
                == 404
            )
        finally:
            worker.terminate()
            worker.wait(timeout=30)
