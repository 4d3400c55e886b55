"""The production topology as separate processes: `gedrag api` and two `gedrag worker` over the
Redis broker, with the PostgreSQL catalog and the Qdrant server. Uploads are processed by both
workers; one worker killed mid-task loses no document and leaves no duplicate.

Qdrant's local mode allows one process per storage folder, so this needs a Qdrant server: the
test runs when GEDRAG_QDRANT__URL is set (the compose stack sets it) and skips saying so here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import CatalogSettings, QdrantSettings, Settings
from runtime import Runtime
from tests.integration.test_worker_killed import long_text
from tests.support.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GEDRAG = str(Path(sys.executable).with_name("gedrag"))
QDRANT_URL = os.environ.get("GEDRAG_QDRANT__URL")


def job_ids_in(log: Path) -> set[str]:
    """Jobs a process worked on, from its JSON log lines."""
    found = set()
    for line in log.read_text().splitlines():
        if line.startswith("{") and (job := json.loads(line).get("job_id")):
            found.add(job)
    return found


@pytest.mark.skipif(
    not QDRANT_URL,
    reason="needs a Qdrant server (GEDRAG_QDRANT__URL): local mode is one process per folder",
)
def test_api_and_two_workers_share_the_work_and_survive_a_kill(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GEDRAG_DATA_DIR": str(tmp_path / "var"),  # originals: shared, as the compose volume
        "GEDRAG_CATALOG__URL": postgres_url,
        "GEDRAG_BROKER__URL": redis_url,
        "GEDRAG_BROKER__QUEUE": f"mp-{uuid.uuid4().hex[:8]}",
        "GEDRAG_BROKER__VISIBILITY_TIMEOUT_S": "5",
        "GEDRAG_QDRANT__COLLECTION_PREFIX": f"mp{uuid.uuid4().hex[:8]}",
        "GEDRAG_API__PORT": str(port),
        "GEDRAG_OBSERVABILITY__LOG_FORMAT": "json",
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *args: str, **extra: str) -> None:
        log = (tmp_path / f"{name}.log").open("w")
        procs[name] = subprocess.Popen(
            [GEDRAG, *args], env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT
        )

    base = f"http://127.0.0.1:{port}"
    try:
        start("api", "api")
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()[-3000:]
            time.sleep(0.5)
        key = next(
            line.split("=", 1)[1].strip()
            for line in (tmp_path / "api.log").read_text().splitlines()
            if "GEDRAG_CLIENT__API_KEY=" in line
        )
        auth = {"Authorization": f"Bearer {key}"}
        for name in ("w1", "w2"):
            start(name, "worker", GEDRAG_OBSERVABILITY__WORKER_METRICS_PORT=str(free_port()))

        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            uploads: list[dict[str, Any]] = []
            files = [(f"long-{i}.txt", long_text() + f"\n\nCopy {i}.".encode()) for i in range(2)]
            files += [(f"note-{i}.md", f"# Note {i}\n\nAcme note {i}.".encode()) for i in range(6)]
            for name, data in files:
                r = client.post("/v1/documents", files={"file": (name, data)})
                assert r.status_code == 202, r.text
                uploads.append(r.json())
            # Kill a worker while a long document is being embedded.
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                job = client.get(f"/v1/jobs/{uploads[0]['job_id']}").json()
                if job["stage"] == "embedding":
                    break
                time.sleep(0.1)
            victim = next(
                n for n in ("w1", "w2") if uploads[0]["job_id"] in job_ids_in(tmp_path / f"{n}.log")
            )
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(timeout=30)

            deadline = time.monotonic() + 600
            states: dict[str, str] = {}
            while time.monotonic() < deadline:
                states = {
                    u["job_id"]: client.get(f"/v1/jobs/{u['job_id']}").json()["state"]
                    for u in uploads
                }
                if all(s in ("succeeded", "failed") for s in states.values()):
                    break
                time.sleep(0.5)
            assert set(states.values()) == {"succeeded"}, states
            for u in uploads:
                assert client.get(f"/v1/documents/{u['document_id']}").json()["status"] == "ready"
        # Every chunk exactly once in each store: the redelivered task duplicated nothing.
        settings = Settings(
            data_dir=tmp_path / "var",
            catalog=CatalogSettings(url=postgres_url),
            qdrant=QdrantSettings(
                url=QDRANT_URL, collection_prefix=env["GEDRAG_QDRANT__COLLECTION_PREFIX"]
            ),
        )
        rt = Runtime.build(settings, migrate=False)
        try:
            tenant = rt.catalog.tenants.get("default").id
            for u in uploads:
                doc = rt.catalog.documents.get(tenant, u["document_id"])
                assert doc.current is not None
                chunks = doc.current.chunk_count
                assert chunks and rt.vectors.count(tenant, doc.id) == chunks
                assert rt.graph.counts(tenant, doc.id).chunks == chunks
        finally:
            rt.close()
        worked = {n: job_ids_in(tmp_path / f"{n}.log") for n in ("w1", "w2")}
        assert worked["w1"] and worked["w2"], "both workers must have processed jobs"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
