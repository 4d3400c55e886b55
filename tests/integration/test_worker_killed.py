"""A worker killed with SIGKILL in the middle of a document: the job is delivered again to
another worker process and completes, with no duplicate anywhere (Redis broker, PostgreSQL
catalog, separate worker processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from core.settings import BrokerSettings, Settings
from runtime import Runtime
from serving.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GEDRAG = str(Path(sys.executable).with_name("gedrag"))


def long_text() -> bytes:
    paragraphs = [
        f"Section {i}. The maintenance contract CTR-{1000 + i} binds ACME Industries and the "
        f"city of Lyon. Invoice INV-{2000 + i} amounts to {100 + i} EUR and is due on "
        f"March {1 + i % 28}, 2025. " * 6
        for i in range(500)
    ]
    return "\n\n".join(paragraphs).encode()


def test_killed_worker_job_completes_without_duplicates(
    make_settings: Callable[..., Settings], postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        postgres_url, broker=BrokerSettings(url=redis_url, queue=queue, visibility_timeout_s=5)
    )
    env = {
        **os.environ,
        "GEDRAG_DATA_DIR": str(settings.data_dir),
        "GEDRAG_CATALOG__URL": postgres_url,
        "GEDRAG_BROKER__URL": redis_url,
        "GEDRAG_BROKER__QUEUE": queue,
        "GEDRAG_BROKER__VISIBILITY_TIMEOUT_S": "5",
    }

    def start_worker(name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("w")
        return subprocess.Popen([GEDRAG, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)

    with TestClient(create_app(settings)) as client:
        rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        rt.catalog.tenants.create("acme")
        key, _ = rt.catalog.tenants.create_key("acme")
        auth = {"Authorization": f"Bearer {key}"}
        first = start_worker("first")
        second = None
        try:
            up = client.post(
                "/v1/documents", headers=auth, files={"file": ("long.txt", long_text())}
            )
            job_url = f"/v1/jobs/{up.json()['job_id']}"
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                job = client.get(job_url, headers=auth).json()
                if job["stage"] == "embedding" and job["progress"] > 0.45:
                    break
                time.sleep(0.1)
            assert job["stage"] == "embedding", job
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            second = start_worker("second")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                job = client.get(job_url, headers=auth).json()
                if job["state"] in ("succeeded", "failed"):
                    break
                time.sleep(0.3)
            logs = (tmp_path / "second.log").read_text()[-3000:]
            assert job["state"] == "succeeded", (job, logs)
            assert job["attempts"] >= 1
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=30)

        tenant = rt.catalog.tenants.get("acme").id
        doc_id = up.json()["document_id"]
        with rt.catalog.engine.connect() as conn:
            chunks = conn.execute(
                sa.text("SELECT count(*), count(DISTINCT id) FROM chunks WHERE document_id = :d"),
                {"d": doc_id},
            ).one()
        assert chunks[0] == chunks[1] > 100
        assert rt.vectors.count(tenant, doc_id) == chunks[0]
        assert len(rt.vectors.point_ids(tenant, doc_id)) == chunks[0]
        assert rt.graph.counts(tenant, doc_id).chunks == chunks[0]
        doc = client.get(f"/v1/documents/{doc_id}", headers=auth).json()
        assert doc["status"] == "ready" and doc["versions"][0]["chunk_count"] == chunks[0]
