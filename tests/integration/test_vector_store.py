"""VectorStore conformance on Qdrant: local mode always, the server when GEDRAG_QDRANT__URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from qdrant_client import models

from core import ids
from core.errors import ConfigurationError, StoreUnavailable
from stores.vectors import SearchFilter, VectorPoint, collection_name
from stores.vectors.qdrant import QdrantVectorStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QdrantVectorStore]:
    name = f"test_{uuid.uuid4().hex[:8]}"
    if request.param == "server":
        url = os.environ.get("GEDRAG_QDRANT__URL")
        if not url:
            pytest.skip("Qdrant server conformance runs when GEDRAG_QDRANT__URL is set")
        s = QdrantVectorStore(name, url=url)
        yield s
        s.client.delete_collection(name)
    else:
        s = QdrantVectorStore(name, path=tmp_path / "qdrant")
        yield s
    s.close()


def point(
    tenant: str, doc: str, version: str, i: int, tags: list[str] | None = None
) -> VectorPoint:
    return VectorPoint(
        id=ids.stable_uuid(tenant, doc, version, str(i)),
        dense=[1.0, float(i), 0.5, 0.0],
        sparse_indices=[i, 1000 + i],
        sparse_values=[1.0, 0.5],
        payload={
            "tenant_id": tenant,
            "document_id": doc,
            "version_id": version,
            "tags": tags or [],
        },
    )


def test_upsert_count_delete(store: QdrantVectorStore) -> None:
    store.ensure_collection(4)
    store.ensure_collection(4)
    pts = [point("t1", "d1", "v1", i) for i in range(5)] + [
        point("t1", "d1", "v2", i) for i in range(3)
    ]
    store.upsert(pts)
    store.upsert(pts)  # same ids: overwritten, not duplicated
    assert store.count("t1", "d1") == 8
    assert store.count("t1", "d1", "v2") == 3
    assert store.count("t2", "d1") == 0
    assert store.point_ids("t1", "d1") == {p.id for p in pts}
    store.delete("t1", "d1", "v1")
    assert store.count("t1", "d1") == 3
    store.delete("t2", "d1")  # another tenant's delete touches nothing
    assert store.count("t1", "d1") == 3
    store.delete("t1", "d1")
    assert store.count("t1", "d1") == 0
    store.delete("t1", "d1")  # absent: no-op


def test_payload_update(store: QdrantVectorStore) -> None:
    store.ensure_collection(4)
    store.upsert([point("t1", "d1", "v1", i, ["old"]) for i in range(3)])
    store.set_payload("t1", "d1", {"tags": ["new"]})
    got = store.client.scroll(store.collection, limit=10, with_payload=True)[0]
    assert {tuple(p.payload["tags"]) for p in got} == {("new",)}


def test_missing_collection_reads_as_empty(store: QdrantVectorStore) -> None:
    assert store.count("t1", "d1") == 0
    assert store.point_ids("t1", "d1") == set()
    store.delete("t1", "d1")


def test_dimension_mismatch_is_refused(store: QdrantVectorStore) -> None:
    store.ensure_collection(4)
    store._ready = False  # as a new process would find it: the collection exists
    with pytest.raises(ConfigurationError, match="4-d vectors"):
        store.ensure_collection(8)


def test_second_process_on_a_local_folder_is_refused(tmp_path: Path) -> None:
    first = QdrantVectorStore("c", path=tmp_path / "q")
    with pytest.raises(ConfigurationError, match="one process per folder"):
        QdrantVectorStore("c", path=tmp_path / "q")
    first.close()


def test_collection_per_model() -> None:
    assert (
        collection_name("gedrag", "sentence-transformers/all-MiniLM-L6-v2")
        == "gedrag_all_minilm_l6_v2"
    )
    assert collection_name("gedrag", "/models/e5-base") == "gedrag_e5_base"


def test_lookups_and_deletes_by_id(store: QdrantVectorStore) -> None:
    pts = [point("t1", "d1", "v1", i) for i in range(4)]
    assert store.missing([p.id for p in pts]) == {p.id for p in pts}  # no collection yet
    store.ensure_collection(4)
    store.upsert(pts[:3])
    assert store.missing([p.id for p in pts]) == {pts[3].id}
    store.delete_ids([pts[0].id, pts[3].id])
    assert store.point_ids("t1", "d1") == {pts[1].id, pts[2].id}
    store.delete_ids([])
    assert store.missing([]) == set()


def test_search_is_filtered_by_tenant_and_fields(store: QdrantVectorStore) -> None:
    store.ensure_collection(4)
    pts = [
        VectorPoint(
            id=ids.stable_uuid("s", str(i)),
            dense=[1.0, 0.1 * i, 0.0, 0.0],
            sparse_indices=[7, 100 + i],
            sparse_values=[1.0, 1.0],
            payload={
                "tenant_id": "t1" if i < 4 else "t2",
                "document_id": f"d{i}",
                "version_id": "v",
                "collection": "a" if i % 2 else "b",
                "tags": ["x"] if i == 1 else [],
                "metadata": {"k": i},
                "uploaded_at": float(i),
            },
        )
        for i in range(6)
    ]
    store.upsert(pts)
    t1 = SearchFilter(tenant_id="t1")
    assert {h.payload["tenant_id"] for h in store.search_dense([1, 0, 0, 0], t1, 10)} == {"t1"}
    assert len(store.search_sparse([7], [1.0], t1, 10)) == 4
    assert [h.payload["document_id"] for h in store.search_sparse([101], [1.0], t1, 10)] == ["d1"]
    assert store.search_sparse([105], [1.0], t1, 10) == []  # another tenant's term
    narrow = SearchFilter(tenant_id="t1", collections=["a"], tags=["x"])
    assert [h.payload["document_id"] for h in store.search_dense([1, 0, 0, 0], narrow, 10)] == [
        "d1"
    ]
    meta = SearchFilter(tenant_id="t1", metadata={"k": 2}, uploaded_after=1.5)
    assert [h.payload["document_id"] for h in store.search_dense([1, 0, 0, 0], meta, 10)] == ["d2"]
    fetched = store.fetch([p.id for p in pts], SearchFilter(tenant_id="t2"))
    assert {h.payload["document_id"] for h in fetched} == {"d4", "d5"}


def test_local_mirror_ranks_and_scores_like_qdrant(tmp_path: Path) -> None:
    """Local mode searches an in-memory mirror; Qdrant's own local implementation is the
    reference it must match, through writes, deletes and payload changes."""
    import random

    from stores.vectors import DENSE, SPARSE

    rng = random.Random(7)
    store = QdrantVectorStore("mirror", path=tmp_path / "q")
    store.ensure_collection(8)

    def make(i: int) -> VectorPoint:
        terms = sorted(rng.sample(range(40), 5))
        sentences = [[rng.uniform(-1, 1) for _ in range(8)] for _ in range(i % 4)]
        return VectorPoint(
            id=ids.stable_uuid("m", str(i)),
            dense=[rng.uniform(-1, 1) for _ in range(8)],
            sparse_indices=terms,
            sparse_values=[rng.uniform(0.1, 2.0) for _ in terms],
            payload={
                "tenant_id": f"t{i % 2}",
                "document_id": f"d{i % 25}",
                "version_id": "v",
                "collection": "ab"[i % 3 % 2],
                "tags": [f"g{i % 4}"],
                "metadata": {"m": i % 5},
                "uploaded_at": float(i),
            },
            sentences=sentences,
        )

    pts = [make(i) for i in range(300)]
    store.upsert(pts[:200])
    store.search_dense([0.0] * 8, SearchFilter(tenant_id="t0"), 1)  # builds the mirror
    store.upsert(pts[200:])  # written through the mirror
    filters = [
        SearchFilter(tenant_id="t0"),
        SearchFilter(tenant_id="t1", collections=["a"]),
        SearchFilter(tenant_id="t0", tags=["g0", "g2"], metadata={"m": 2}),
        SearchFilter(tenant_id="t1", document_ids=["d1", "d3", "d5"], uploaded_after=50.0),
    ]

    def compare() -> None:
        for flt in filters:
            for _ in range(5):
                q = [rng.uniform(-1, 1) for _ in range(8)]
                ours, ref = store.search_dense(q, flt, 10), store._query(q, DENSE, flt, 10)
                assert [h.id for h in ours] == [h.id for h in ref]
                assert [round(h.score, 4) for h in ours] == [round(h.score, 4) for h in ref]
                terms = sorted(rng.sample(range(40), 3))
                weights = [1.0] * 3
                ours = store.search_sparse(terms, weights, flt, 10)
                ref = store._query(
                    models.SparseVector(indices=terms, values=weights), SPARSE, flt, 10
                )
                assert [round(h.score, 4) for h in ours] == [round(h.score, 4) for h in ref]
                assert {h.id for h in ours} == {h.id for h in ref} or len(ours) == 10
                named = [p.id for p in rng.sample(pts, 40)]
                ours_max = store.score_sentences(q, named, flt)
                ref_max = store._max_sim(q, named, flt)
                assert ours_max.keys() == ref_max.keys()
                assert all(abs(ours_max[i] - ref_max[i]) < 1e-4 for i in ref_max)

    compare()
    store.delete("t0", "d4")
    store.delete_ids([pts[1].id, pts[3].id])
    store.set_payload("t1", "d7", {"tags": ["g0"]})
    compare()
    store.close()


def test_sentence_scores_are_the_best_sentence_of_each_named_point(
    store: QdrantVectorStore,
) -> None:
    store.ensure_collection(4)
    assert store.has_sentences()
    sentences = {
        0: [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]],
        1: [[0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]],
        2: [],  # stored without sentence vectors
    }
    pts = [replace(point("t1", "d1", "v1", i), sentences=s) for i, s in sentences.items()]
    other = replace(point("t2", "d1", "v1", 0), sentences=[[1.0, 0.0, 0.0, 0.0]])
    store.upsert([*pts, other])
    got = store.score_sentences(
        [1.0, 0.0, 0.0, 0.0], [p.id for p in [*pts, other]], SearchFilter(tenant_id="t1")
    )
    assert got.keys() == {pts[0].id, pts[1].id}  # not the other tenant's, not the bare one
    assert got[pts[0].id] == pytest.approx(1.0, abs=1e-5)
    assert got[pts[1].id] == pytest.approx(2**-0.5, abs=1e-5)  # max of 0 and cos 45°
    assert store.score_sentences([1.0, 0.0, 0.0, 0.0], [], SearchFilter(tenant_id="t1")) == {}
    page, _ = store.scroll_points()  # migrations copy them
    copied = {p.id: p.sentences for p in page}
    assert [len(copied[p.id]) for p in pts] == [2, 2, 0]


def test_a_collection_made_before_sentence_vectors_still_serves(tmp_path: Path) -> None:
    """Collections of earlier gedrag versions have no sentence multivector: writes drop the
    sentences, sentence scores are empty, searches work (a re-embedding adds them)."""
    from stores.vectors import DENSE, SPARSE

    store = QdrantVectorStore("legacy", path=tmp_path / "q")
    store.client.create_collection(
        "legacy",
        vectors_config={DENSE: models.VectorParams(size=4, distance=models.Distance.COSINE)},
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    store.ensure_collection(4)
    assert not store.has_sentences()
    p = replace(point("t1", "d1", "v1", 1), sentences=[[1.0, 0.0, 0.0, 0.0]])
    store.upsert([p])
    flt = SearchFilter(tenant_id="t1")
    assert [h.id for h in store.search_dense([1.0, 1.0, 0.5, 0.0], flt, 5)] == [p.id]
    assert store.score_sentences([1.0, 0.0, 0.0, 0.0], [p.id], flt) == {}
    store.close()


def test_ping_answers(store: QdrantVectorStore) -> None:
    store.ping()


def test_ping_of_an_unreachable_server_is_store_unavailable() -> None:
    store = QdrantVectorStore("c", url="http://127.0.0.1:1", timeout_s=2)
    with pytest.raises(StoreUnavailable):
        store.ping()


@pytest.mark.skipif(
    not os.environ.get("GEDRAG_QDRANT__URL"), reason="shards exist on a Qdrant server only"
)
def test_new_collections_get_the_configured_shards() -> None:
    name = f"test_{uuid.uuid4().hex[:8]}"
    url = os.environ["GEDRAG_QDRANT__URL"]
    store = QdrantVectorStore(name, url=url, shards={"shard_number": 2, "replication_factor": 1})
    try:
        store.ensure_collection(4)
        params = store.client.get_collection(name).config.params
        assert (params.shard_number, params.replication_factor) == (2, 1)
    finally:
        store.client.delete_collection(name)
        store.close()
