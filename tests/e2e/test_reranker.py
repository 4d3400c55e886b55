"""The reranking stage with a real (tiny, random) CrossEncoder: passages come back in the
reranker's order, and the stage is timed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval.rerank import CrossEncoderReranker
from tests.e2e.conftest import Api
from tests.support.tiny_cross_encoder import build

pytestmark = pytest.mark.e2e


def test_reranker_orders_the_passages(make_api: Callable[..., Api], tmp_path: Path) -> None:
    model = build(tmp_path / "cross-encoder")
    api = make_api(None, retrieval={"reranker": str(model)})
    for i, text in enumerate(
        [
            "Ladders are inspected monthly.",
            "Helmets are required.",
            "Ladders must be stored flat.",
            "Gloves protect hands.",
        ]
    ):
        up = api.upload(f"n{i}.md", f"# Note {i}\n\n{text}\n".encode()).json()
        assert api.wait(up["job_id"])["state"] == "succeeded"
    body = api.client.post("/v1/search", headers=api.h(), json={"query": "ladders"}).json()
    assert "rerank" in body["timings_ms"]
    texts = [p["text"] for p in body["passages"]]
    scores = CrossEncoderReranker(str(model)).score("ladders", texts)
    # MMR (lambda 0.8) may swap near neighbours; the reranker's best passage leads.
    assert texts[0] == texts[max(range(len(scores)), key=scores.__getitem__)]
    assert body["passages"][0]["score"] == pytest.approx(max(scores), abs=1e-5)
