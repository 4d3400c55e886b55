"""Long-running processes: a worker serves its own metrics; a second process on the same local
Qdrant folder is refused at start, with the reason, instead of failing at its first search."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GEDRAG = str(Path(sys.executable).with_name("gedrag"))


def test_worker_metrics_and_one_process_per_local_qdrant_folder(
    redis_url: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    env = {
        **os.environ,
        "GEDRAG_DATA_DIR": str(tmp_path / "var"),
        "GEDRAG_BROKER__URL": redis_url,
        "GEDRAG_BROKER__QUEUE": f"guard-{uuid.uuid4().hex[:8]}",
        "GEDRAG_OBSERVABILITY__WORKER_METRICS_PORT": str(metrics_port),
        "GEDRAG_API__PORT": str(free_port()),
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([GEDRAG, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            try:
                metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "worker metrics never answered"
                time.sleep(0.3)
        assert metrics.status_code == 200
        assert "# TYPE gedrag_ingestion_stage_duration_seconds histogram" in metrics.text
        assert "# TYPE gedrag_jobs_total counter" in metrics.text

        for command in ("api", "worker"):
            second = subprocess.run(
                [GEDRAG, command],
                env={**env, "GEDRAG_OBSERVABILITY__WORKER_METRICS_PORT": "0"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert second.returncode == 1, second
            said = " ".join((second.stdout + second.stderr).split())
            assert "local Qdrant folder" in said
            assert "one process per folder" in said
            assert "GEDRAG_QDRANT__URL" in said
        assert worker.poll() is None  # the first one keeps working
    finally:
        worker.terminate()
        worker.wait(timeout=30)
