"""VectorStore conformance on Qdrant: local mode always, the server when GEDRAG_QDRANT__URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import ids
from core.errors import ConfigurationError
from stores.vectors import QdrantVectorStore, VectorPoint, collection_name

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
