"""Re-embedding while a client queries continuously: a new collection with other sparse
weights is built from the catalog while the old one serves, documents are added and deleted
meanwhile, then one alias switch; no query fails and none ever sees a half-built collection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import EmbeddingSettings, Settings, SparseSettings
from infra.migrate import vectors, verify
from runtime import Runtime
from stores.vectors import SearchFilter, VectorPoint, VectorStore, collection_name
from stores.vectors.edge import EdgeVectorStore
from tests.support import tiny_embedder
from tests.support.migration import (
    DOCS,
    QueryingClient,
    build_interrupted_then_resumed,
    ingest,
    running,
    runtime,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def whole_points(store: VectorStore) -> list[VectorPoint]:
    out, offset = [], None
    while True:
        page, offset = store.scroll_points(offset)
        out.extend(page)
        if offset is None:
            return out


def test_reembedding_switches_the_alias_atomically_while_queries_run(
    make_settings: Callable[..., Settings],
) -> None:
    with running(make_settings()) as api:
        rt = runtime(api)
        ids = {name: ingest(api, name, DOCS[name]) for name in ("contract", "handbook", "memo")}
        tenant = rt.catalog.tenants.get("acme").id
        live = rt.vectors.collection
        # A probe on the two documents nobody touches: its hit count is the same in the old
        # and the complete new collection, and lower in any half-built one.
        probe = rt.models.sparse.encode_query("ACME Industries Lyon contract ladders", "en")
        steady = SearchFilter(tenant_id=tenant, document_ids=[ids["contract"], ids["handbook"]])

        def probe_hits() -> int:
            return len(rt.vectors.search_sparse(probe.indices, probe.values, steady, 100))

        expected_hits = probe_hits()
        assert expected_hits > 0
        with QueryingClient(api, probe_hits) as client:
            indexer = vectors.target_indexer(rt, sparse=SparseSettings(k1=1.6, b=0.5))
            built: list[dict[str, object]] = []
            builder = threading.Thread(
                target=lambda: built.append(vectors.build(rt, indexer, batch_size=1))
            )
            builder.start()
            ids["notes"] = ingest(api, "notes", DOCS["notes"])  # during the build
            assert api.purge(ids["memo"])["state"] == "succeeded"
            builder.join(120)
            assert built, "the build did not finish"
            switch_started = time.monotonic()
            switched = vectors.switch(rt, indexer)
            switch_ended = time.monotonic()
            client.wait_after(switch_ended)  # the client goes on after the switch

        assert client.failures == []
        assert set(client.seen) == {expected_hits}
        assert client.before(switch_started) >= 5  # it queried before,
        assert client.after(switch_ended) >= 5  # and after the switch
        new = str(switched["to"])
        assert rt.vectors.alias_target() == new and switched["from"] == f"{live}__legacy"

        # The new collection holds exactly the live chunks, with the new sparse weights.
        assert verify.verify(rt).ok
        assert rt.vectors.point_ids(tenant, ids["memo"]) == set()
        notes = rt.catalog.chunks.of_version(rt.catalog.versions.get(tenant, ids["notes"]).id)
        point = next(p for p in whole_points(rt.vectors) if p.id == notes[0].id)
        encoded = indexer.models.sparse.encode_document(notes[0].text, notes[0].language)
        assert dict(zip(point.sparse_indices, point.sparse_values, strict=True)) == pytest.approx(
            dict(zip(encoded.indices, encoded.values, strict=True))
        )
        r = api.client.post("/v1/search", headers=api.h(), json={"query": "board budget"})
        assert ids["notes"] in {p["document_id"] for p in r.json()["passages"]}

        # Rollback points the alias back; finalize drops the collection it left.
        back = vectors.rollback(rt)
        assert rt.vectors.alias_target() == back["to"] == f"{live}__legacy"
        assert probe_hits() == expected_hits
        assert verify.verify(rt).ok
        vectors.switch(rt, indexer)
        assert rt.vectors.alias_target() == new
        assert vectors.finalize(rt)["dropped"] == f"{live}__legacy"
        assert rt.vectors.sibling(f"{live}__legacy").dim() is None
        assert probe_hits() == expected_hits


def test_reembedding_with_another_model_then_a_rolling_restart(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    tiny = str(tiny_embedder.build(tmp_path / "tiny-embedder"))
    settings = make_settings()
    with running(settings) as api:
        ids = {name: ingest(api, name, DOCS[name]) for name in ("contract", "handbook")}
        rt = runtime(api)
        indexer = vectors.target_indexer(rt, model=tiny)
        assert vectors.build(rt, indexer)["built"] == 2
        out = vectors.switch(rt, indexer)
        assert out["alias"] == collection_name("gedrag", tiny) != rt.vectors.collection
        # This process keeps its model and its collection until it restarts.
        r = api.client.post("/v1/search", headers=api.h(), json={"query": "annual price"})
        assert r.status_code == 200 and r.json()["passages"]
        ids["notes"] = ingest(api, "notes", DOCS["notes"])  # before the restart: old only

    restarted = settings.model_copy(update={"embedding": EmbeddingSettings(model=tiny)})
    rt = Runtime.build(restarted)
    try:
        assert rt.vectors.dim() == tiny_embedder.DIM
        report = verify.verify(rt)
        assert {d.document_id: d.stores for d in report.drift} == {ids["notes"]: {"vectors"}}
        verify.repair(rt, report)
        assert verify.verify(rt).ok
    finally:
        rt.close()
    with running(restarted) as api:
        r = api.client.post("/v1/search", headers=api.h(), json={"query": "board budget"})
        assert r.status_code == 200
        assert ids["notes"] in {p["document_id"] for p in r.json()["passages"]}


def test_an_interrupted_build_resumes_from_its_checkpoint(
    make_settings: Callable[..., Settings],
) -> None:
    with running(make_settings()) as api:
        for name in ("contract", "handbook", "memo"):
            ingest(api, name, DOCS[name])
        rt = runtime(api)
        indexer = vectors.target_indexer(rt, sparse=SparseSettings(b=0.4))

        build_interrupted_then_resumed(rt, indexer, documents=3)
        new = vectors.target(rt, indexer).new
        tenant = rt.catalog.tenants.get("acme").id
        live = [d["id"] for d in api.client.get("/v1/documents", headers=api.h()).json()["items"]]
        chunks = {
            c.id
            for doc in live
            for c in rt.catalog.chunks.of_version(rt.catalog.versions.get(tenant, doc).id)
        }
        assert len(live) == 3 and set(vectors.all_point_versions(new)) == chunks


def test_a_collection_made_before_sentence_vectors_gets_them_by_reembedding(
    make_settings: Callable[..., Settings],
) -> None:
    """An earlier gedrag's collection has no sentence multivector: it keeps serving, and
    `gedrag migrate reembed --switch` with the same model moves the alias to one that has them;
    documents added after the switch get them too, and a rollback goes back to the old points."""
    settings = make_settings()
    old = EdgeVectorStore(
        collection_name(settings.qdrant.collection_prefix, settings.embedding.model),
        path=settings.qdrant_path,
    )
    old.engine.create(old.collection, 384, sentences=False)  # an earlier gedrag's layout
    old.close()
    query = {"query": "who inspects the ladders"}
    with running(settings) as api:
        ids = {name: ingest(api, name, DOCS[name]) for name in ("contract", "handbook")}
        rt = runtime(api)
        tenant = rt.catalog.tenants.get("acme").id
        flt = SearchFilter(tenant_id=tenant)
        chunk_ids = [
            c.id
            for c in rt.catalog.chunks.of_version(
                rt.catalog.versions.get(tenant, ids["handbook"]).id
            )
        ]
        r = api.client.post("/v1/search", headers=api.h(), json=query)
        assert r.status_code == 200 and "sentence" in r.json()["timings_ms"]
        assert rt.vectors.score_sentences([1.0] * 384, chunk_ids, flt) == {}

        indexer = vectors.target_indexer(rt)
        assert vectors.build(rt, indexer)["built"] == 2
        vectors.switch(rt, indexer)
        assert rt.vectors.has_sentences()
        assert rt.vectors.score_sentences([1.0] * 384, chunk_ids, flt).keys() == set(chunk_ids)
        ids["notes"] = ingest(api, "notes", DOCS["notes"])
        notes = rt.catalog.chunks.of_version(rt.catalog.versions.get(tenant, ids["notes"]).id)
        assert rt.vectors.score_sentences([1.0] * 384, [c.id for c in notes], flt)
        top = api.client.post("/v1/search", headers=api.h(), json=query).json()["passages"][0]
        assert "site safety officer" in top["text"]

        vectors.rollback(rt)  # back to the old points (copied aside, without sentences)
        assert rt.vectors.score_sentences([1.0] * 384, chunk_ids, flt) == {}
        ids["memo"] = ingest(api, "memo", DOCS["memo"])
        report = verify.verify(rt)  # notes came after the switch: the old points lack it
        assert {d.document_id for d in report.drift} == {ids["notes"]}
        verify.repair(rt, report)
        assert verify.verify(rt).ok
        r = api.client.post("/v1/search", headers=api.h(), json=query)
        assert "site safety officer" in r.json()["passages"][0]["text"]
