"""The text models load when the API starts, in the background: /ready says "loading" until
they are in memory, and an ingestion that needs them meanwhile shows the stage "loading model"
instead of no progress (issue #21: ~30 s of nothing on the first day)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import BrokerSettings, Settings
from runtime import Runtime
from serving.app import create_app
from stores.catalog import Catalog
from tests.support.words_embedder import WordsEmbedder
from textmodels.models import TextModels

pytestmark = pytest.mark.e2e


class SlowToLoad(WordsEmbedder):
    """An embedder whose first call waits until the test opens the gate: a model loading."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return super().embed(texts)


def test_ready_and_jobs_say_the_model_is_loading(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var", broker=BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}")
    )
    settings.data_dir.mkdir(parents=True)
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    embedder = SlowToLoad()
    rt = Runtime(settings, catalog, TextModels(settings, embedder=embedder))
    try:
        with TestClient(create_app(settings, runtime=rt)) as client:
            catalog.tenants.create("acme")
            key, _ = catalog.tenants.create_key("acme")
            h = {"Authorization": f"Bearer {key}"}

            loading = client.get("/ready")
            assert loading.status_code == 503, loading.text
            models = loading.json()["components"]["models"]
            assert (
                models["status"] == "loading" and "loading the embedding model" in models["detail"]
            )
            assert loading.json()["components"]["catalog"]["status"] == "up"

            up = client.post(
                "/v1/documents",
                headers=h,
                files={"file": ("memo.md", b"# Memo\n\nBudget: 12 EUR.")},
            ).json()
            deadline = time.monotonic() + 60
            while (job := client.get(f"/v1/jobs/{up['job_id']}", headers=h).json())[
                "stage"
            ] != "loading model":
                assert job["state"] in ("queued", "running"), job
                assert time.monotonic() < deadline, job
                time.sleep(0.05)
            assert job["state"] == "running"

            embedder.gate.set()  # the weights are in memory
            while (job := client.get(f"/v1/jobs/{up['job_id']}", headers=h).json())[
                "state"
            ] not in (
                "succeeded",
                "failed",
            ):
                assert time.monotonic() < deadline, job
                time.sleep(0.05)
            assert job["state"] == "succeeded", job
            client.app.state.warmup.wait(30)  # type: ignore[attr-defined]
            ready = client.get("/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["components"]["models"]["status"] == "up"
            # the warm-up also built the question-answering stack: the first question is quick
            assert client.app.state.qa is not None  # type: ignore[attr-defined]
            found = client.post("/v1/search", headers=h, json={"query": "budget"})
            assert found.status_code == 200 and found.json()["passages"], found.text
    finally:
        embedder.gate.set()
        rt.close()
