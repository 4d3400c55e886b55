"""`gedrag up` on a data folder made by the previous release: its vectors were in
qdrant-client's local mode (``<data>/qdrant/meta.json``, ``collection/<name>/storage.sqlite``,
an alias after a re-embedding). The start converts the folder to Qdrant Edge, keeps the old one
aside, and serves the same answers; `gedrag migrate verify` finds no drift."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient, models

from core.settings import Settings
from infra.migrate import to_edge, verify
from runtime import Runtime
from serving.app import create_app
from stores.vectors import DENSE, SENTENCES, SPARSE, VectorPoint, VectorStore
from tests.support.migration import DOCS, QUESTIONS, ingest, running, runtime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUERIES = [*QUESTIONS, "board budget", "site safety officer ladders"]


def answers(client: TestClient, key: str) -> list[list[tuple[str, float]]]:
    out = []
    for q in QUERIES:
        r = client.post("/v1/search", headers={"Authorization": f"Bearer {key}"}, json={"query": q})
        assert r.status_code == 200, r.text
        out.append([(p["chunk_id"], p["score"]) for p in r.json()["passages"]])
    return out


def whole_points(store: VectorStore) -> list[VectorPoint]:
    out: list[VectorPoint] = []
    offset: Any = None
    while True:
        page, offset = store.scroll_points(offset)
        out.extend(page)
        if offset is None:
            return out


def write_previous_release_folder(
    settings: Settings, physical: str, alias: str, points: list[VectorPoint]
) -> None:
    """What the previous release's QdrantVectorStore(path=...) held after a re-embedding."""
    client = QdrantClient(path=str(settings.qdrant_path))
    dim = len(points[0].dense)
    client.create_collection(
        physical,
        vectors_config={
            DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE),
            SENTENCES: models.VectorParams(
                size=dim,
                distance=models.Distance.COSINE,
                multivector_config=models.MultiVectorConfig(
                    comparator=models.MultiVectorComparator.MAX_SIM
                ),
                hnsw_config=models.HnswConfigDiff(m=0),
            ),
        },
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.upsert(
        physical,
        [
            models.PointStruct(
                id=p.id,
                vector={
                    DENSE: p.dense,
                    SPARSE: models.SparseVector(indices=p.sparse_indices, values=p.sparse_values),
                    **({SENTENCES: p.sentences} if p.sentences else {}),
                },
                payload=p.payload,
            )
            for p in points
        ],
    )
    client.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=physical, alias_name=alias)
            )
        ]
    )
    client.close()


def test_gedrag_up_converts_a_previous_release_folder_and_serves_the_same_answers(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    with running(settings) as api:
        for name in ("contract", "handbook", "memo"):
            ingest(api, name, DOCS[name])
        rt = runtime(api)
        before = answers(api.client, api.keys["acme"])
        points = whole_points(rt.vectors)
        alias = rt.vectors.collection
        key = api.keys["acme"]
    assert points and all(p.sentences for p in points)

    # The same vectors, as the previous release stored them.
    shutil.rmtree(settings.qdrant_path)
    write_previous_release_folder(settings, f"{alias}__1a2b3c4d", alias, points)
    assert (settings.qdrant_path / "meta.json").is_file()

    rt = Runtime.build(settings)
    try:
        to_edge.prepare(rt)  # what `gedrag up` does before serving
        assert rt.vectors.alias_target() == f"{alias}__1a2b3c4d"
        assert (to_edge.aside(settings) / "meta.json").is_file()  # kept until finalized
        assert not (settings.qdrant_path / "meta.json").exists()
        with TestClient(create_app(settings, runtime=rt, embedded_worker=False)) as client:
            after = answers(client, key)
        assert [[c for c, _ in a] for a in after] == [[c for c, _ in b] for b in before]
        for a, b in zip(after, before, strict=True):
            assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-4)
        report = verify.verify(rt)
        assert report.ok, report.to_dict()
        assert len(whole_points(rt.vectors)) == len(points)
        assert to_edge.finalize(rt)["deleted"] == str(to_edge.aside(settings))
    finally:
        rt.close()

    rt = Runtime.build(settings)  # a second start: nothing left to convert
    try:
        assert not to_edge.pending(rt)
        to_edge.prepare(rt)
        assert rt.vectors.alias_target() == f"{alias}__1a2b3c4d"
    finally:
        rt.close()
