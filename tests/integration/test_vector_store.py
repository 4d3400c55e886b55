"""VectorStore conformance (tests/support/vector_store_conformance.py) on Qdrant Edge, the
embedded engine, always; on a Qdrant server when GEDRAG_QDRANT__URL is set (skipped, saying so,
otherwise). Then what only the embedded engine has: one process per folder, durability across a
killed process, concurrent threads, optimisation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from qdrant_client import models

from core import ids
from core.errors import ConfigurationError, InvalidInput, StoreUnavailable
from stores.vectors import DENSE, SPARSE, SearchFilter, VectorPoint, VectorStore, collection_name
from stores.vectors.edge import EdgeOptions, EdgeVectorStore
from stores.vectors.qdrant import QdrantVectorStore
from tests.support.vector_store_conformance import VectorStoreConformance, point

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class TestEdgeVectorStore(VectorStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EdgeVectorStore]:
        self.path = tmp_path / "qdrant"
        self.opened: list[EdgeVectorStore] = []
        s = EdgeVectorStore(f"test_{uuid.uuid4().hex[:8]}", path=self.path)
        self.opened.append(s)
        yield s
        for opened in self.opened:
            opened.close()

    def reopen(self, store: VectorStore) -> VectorStore:
        store.close()
        again = EdgeVectorStore(store.collection, path=self.path)
        self.opened.append(again)
        return again

    def make_without_sentences(self, store: VectorStore, dim: int) -> None:
        assert isinstance(store, EdgeVectorStore)
        store.engine.create(store.collection, dim, sentences=False)


class TestQdrantServerVectorStore(VectorStoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[QdrantVectorStore]:
        url = os.environ.get("GEDRAG_QDRANT__URL")
        if not url:
            pytest.skip("Qdrant server conformance runs when GEDRAG_QDRANT__URL is set")
        self.url = url
        name = f"test_{uuid.uuid4().hex[:8]}"
        s = QdrantVectorStore(name, url=url)
        yield s
        client = QdrantVectorStore(name, url=url).client
        client.update_collection_aliases(
            change_aliases_operations=[
                models.DeleteAliasOperation(
                    delete_alias=models.DeleteAlias(alias_name=a.alias_name)
                )
                for a in client.get_aliases().aliases
                if a.alias_name == name
            ]
        )
        for c in client.get_collections().collections:
            if c.name.startswith(name):
                client.delete_collection(c.name)
        client.close()

    def reopen(self, store: VectorStore) -> VectorStore:
        store.close()
        return QdrantVectorStore(store.collection, url=self.url)

    def make_without_sentences(self, store: VectorStore, dim: int) -> None:
        assert isinstance(store, QdrantVectorStore)
        store.client.create_collection(
            store.collection,
            vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )


def test_collection_per_model() -> None:
    assert (
        collection_name("gedrag", "sentence-transformers/all-MiniLM-L6-v2")
        == "gedrag_all_minilm_l6_v2"
    )
    assert collection_name("gedrag", "/models/e5-base") == "gedrag_e5_base"


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


# -- what only the embedded engine has -------------------------------------------------------

SECOND_PROCESS = """
import sys
from core.errors import ConfigurationError
from stores.vectors.edge import EdgeVectorStore
try:
    EdgeVectorStore("c", path=__import__("pathlib").Path(sys.argv[1]))
except ConfigurationError as exc:
    print(exc.detail)
    sys.exit(3)
print("opened")
"""


def test_a_second_process_on_the_folder_is_refused_at_once(tmp_path: Path) -> None:
    first = EdgeVectorStore("c", path=tmp_path / "q")
    first.ensure_collection(4)
    try:
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-c", SECOND_PROCESS, str(tmp_path / "q")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert second.returncode == 3, second
        said = " ".join(second.stdout.split())
        assert f"(pid {os.getpid()})" in said
        for words in ("local Qdrant folder", "one process per folder", "gedrag up"):
            assert words in said
        assert "GEDRAG_QDRANT__URL" in said
        assert time.monotonic() - started < 30  # refused at once, not after a timeout
        with pytest.raises(ConfigurationError, match="one process per folder"):
            EdgeVectorStore("c", path=tmp_path / "q")  # nor a second open in this process
    finally:
        first.close()
    again = subprocess.run(  # released at close
        [sys.executable, "-c", SECOND_PROCESS, str(tmp_path / "q")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert again.returncode == 0 and "opened" in again.stdout, again


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from stores.vectors.edge import EdgeOptions, EdgeVectorStore
from tests.support.vector_store_conformance import point
store = EdgeVectorStore("c", path=Path(sys.argv[1]), options=EdgeOptions(flush_interval_s=3600))
store.ensure_collection(4)
store.upsert([point("t1", "d1", "v1", i) for i in range(300)])
store.delete_ids([point("t1", "d1", "v1", 0).id])
store.set_payload("t1", "d1", {"title": "after"})
print("written", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no flush, no close
"""


def test_writes_survive_a_killed_process(tmp_path: Path) -> None:
    """The engine logs every write before applying it and replays the log at open: a process
    killed before any flush loses nothing it acknowledged."""
    run = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path / "q")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == -9 and "written" in run.stdout, run
    store = EdgeVectorStore("c", path=tmp_path / "q")
    try:
        assert store.count("t1", "d1") == 299
        hits = store.search_dense([1.0, 5.0, 0.5, 0.0], SearchFilter(tenant_id="t1"), 3)
        assert hits[0].id == point("t1", "d1", "v1", 5).id
        assert {h.payload["title"] for h in hits} == {"after"}
    finally:
        store.close()


def test_a_folder_of_the_previous_release_is_not_served_empty(tmp_path: Path) -> None:
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "meta.json").write_text(json.dumps({"collections": {}, "aliases": {}}))
    with pytest.raises(ConfigurationError, match="vectors-to-edge"):
        EdgeVectorStore("c", path=tmp_path / "q")
    # The refusal released the folder: the conversion can take it.
    (tmp_path / "q" / "meta.json").unlink()
    EdgeVectorStore("c", path=tmp_path / "q").close()


def test_bad_metadata_filter_value_is_invalid_input(tmp_path: Path) -> None:
    store = EdgeVectorStore("c", path=tmp_path / "q")
    try:
        store.ensure_collection(4)
        with pytest.raises(InvalidInput, match="'k'"):
            store.search_dense([1, 0, 0, 0], SearchFilter(tenant_id="t", metadata={"k": [1]}), 3)
    finally:
        store.close()


def test_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = EdgeVectorStore("c", path=tmp_path / "q")
    store.ensure_collection(4)
    store.close()
    store.close()  # twice: no-op
    with pytest.raises(StoreUnavailable, match="closed"):
        store.search_dense([1, 0, 0, 0], SearchFilter(tenant_id="t"), 3)


def test_threads_write_and_search_at_once(tmp_path: Path) -> None:
    """The embedded worker's threads write while API threads search: no call fails, every
    write lands, searches see whole points, and a migration's exclusive hold keeps the others
    out for its duration."""
    store = EdgeVectorStore("c", path=tmp_path / "q", options=EdgeOptions(write_batch=16))
    store.ensure_collection(4)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        try:
            for d in range(20):
                store.upsert([point("t1", f"w{w}-d{d}", "v1", i) for i in range(40)])
                store.set_payload("t1", f"w{w}-d{d}", {"title": "x"})
        except BaseException as exc:
            errors.append(exc)

    searched = [0]

    def searcher() -> None:
        try:
            while not stop.is_set():
                for h in store.search_dense([1, 2, 0.5, 0], SearchFilter(tenant_id="t1"), 10):
                    assert h.payload["tenant_id"] == "t1" and h.dense is not None
                store.search_sparse([3, 1003], [1.0, 1.0], SearchFilter(tenant_id="t1"), 10)
                searched[0] += 1
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    searchers = [threading.Thread(target=searcher) for _ in range(2)]
    for t in writers + searchers:
        t.start()
    time.sleep(0.2)
    with store.exclusive():
        held = searched[0]
        time.sleep(0.3)
        assert searched[0] <= held + 2  # at most the searches already inside a call
    for t in writers:
        t.join()
    stop.set()
    for t in searchers:
        t.join()
    try:
        assert errors == []
        assert searched[0] > 0
        assert sum(store.count("t1", f"w{w}-d{d}") for w in range(4) for d in range(20)) == 3200
    finally:
        store.close()


def test_searchable_before_optimisation_and_the_same_after(tmp_path: Path) -> None:
    """Points are searchable as soon as they are written (an appendable segment searched
    exactly); optimize() builds the HNSW index and the answers stay the same."""
    import random

    rng = random.Random(3)
    options = EdgeOptions(flush_interval_s=0, indexing_threshold=2000)
    store = EdgeVectorStore("c", path=tmp_path / "q", options=options)
    store.ensure_collection(16)
    pts = [
        VectorPoint(
            id=ids.stable_uuid("o", str(i)),
            dense=[rng.gauss(0, 1) for _ in range(16)],
            sparse_indices=sorted(rng.sample(range(200), 8)),
            sparse_values=[1.0] * 8,
            payload={"tenant_id": f"t{i % 3}", "document_id": f"d{i}"},
            sentences=[[rng.gauss(0, 1) for _ in range(16)] for _ in range(2)],
        )
        for i in range(12_000)
    ]
    store.upsert(pts)
    assert store.info() == {"points": 12_000, "segments": 1}  # one appendable segment
    queries = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(5)]
    flt = SearchFilter(tenant_id="t1")

    def answers() -> tuple[list[list[str]], list[float], dict[str, float]]:
        dense = [[h.id for h in store.search_dense(q, flt, 10)] for q in queries]
        sparse = [h.score for h in store.search_sparse([5, 9, 77], [1.0, 1.0, 1.0], flt, 10)]
        scores = store.score_sentences(queries[0], [p.id for p in pts[:30]], flt)
        return dense, sparse, scores

    before = answers()
    assert all(len(a) == 10 for a in before[0]) and len(before[1]) == 10
    report = store.optimize()
    assert report["optimized"] is True and report["points"] == 12_000
    assert store.info()["segments"] > 1  # indexed segments beside a new appendable one
    assert store.optimize()["optimized"] is False  # nothing left to do
    after = answers()
    recall = sum(len(set(a) & set(b)) for a, b in zip(before[0], after[0], strict=True)) / 50
    assert recall >= 0.9  # HNSW is approximate; exact before
    # Sparse and MaxSim are exact either way (ties may swap places: compare the scores).
    assert after[1] == pytest.approx(before[1], abs=1e-5)
    assert after[2] == pytest.approx(before[2], abs=1e-5)
    store.close()


def test_dropped_collection_and_alias_file_survive_reopen(tmp_path: Path) -> None:
    store = EdgeVectorStore("live", path=tmp_path / "q")
    new = store.sibling("live__abc")
    new.ensure_collection(4)
    new.upsert([point("t1", "d1", "v1", 0)])
    store.point_alias("live__abc")
    assert json.loads((tmp_path / "q" / "aliases.json").read_text()) == {"live": "live__abc"}
    plain = store.sibling("other")
    plain.ensure_collection(4)
    with pytest.raises(ConfigurationError, match="is a collection"):
        plain.point_alias("live__abc")
    store.drop_collection("live__abc")
    assert json.loads((tmp_path / "q" / "aliases.json").read_text()) == {}
    assert not (tmp_path / "q" / "collections" / "live__abc").exists()
    store.close()


def test_sentences_and_dense_can_live_on_disk_or_in_ram(tmp_path: Path) -> None:
    for n, options in enumerate(
        [
            EdgeOptions(dense_on_disk=True, sentences_on_disk=True, quantization="int8"),
            EdgeOptions(dense_on_disk=False, sentences_on_disk=False),
        ]
    ):
        store = EdgeVectorStore("c", path=tmp_path / f"q{n}", options=options)
        store.ensure_collection(4)
        p = replace(point("t1", "d1", "v1", 1), sentences=[[0.0, 1.0, 0.0, 0.0]])
        store.upsert([p])
        flt = SearchFilter(tenant_id="t1")
        assert [h.id for h in store.search_dense([1, 1, 0.5, 0], flt, 3)] == [p.id]
        assert store.score_sentences([0, 1, 0, 0], [p.id], flt) == pytest.approx({p.id: 1.0})
        config = json.loads(
            (tmp_path / f"q{n}" / "collections" / "c" / "edge_config.json").read_text()
        )
        dense = config["vectors"]["dense"]
        assert (dense.get("memory") == "cold") is options.dense_on_disk
        assert ("quantization_config" in dense) is (options.quantization == "int8")
        store.close()


def test_payload_indexes_exist_and_missing_ones_are_made_at_open(tmp_path: Path) -> None:
    """Every filtered field has its index (the tenant's is the tenant key); a field added to
    the filters after a collection was made gets its index when the folder opens again."""
    import qdrant_edge as qe

    from stores.vectors import FLOAT_FIELDS, KEYWORD_FIELDS

    store = EdgeVectorStore("c", path=tmp_path / "q")
    store.ensure_collection(4)
    shard = store.engine.shard("c")
    assert shard is not None
    schema = shard.engine.info().payload_schema
    assert set(schema) == {"tenant_id", *KEYWORD_FIELDS, *FLOAT_FIELDS}
    tenant = schema["tenant_id"].params
    assert isinstance(tenant, qe.KeywordIndexParams) and tenant.is_tenant
    shard.engine.update(qe.UpdateOperation.delete_field_index("tags"))
    assert "tags" not in shard.engine.info().payload_schema
    store.close()
    store = EdgeVectorStore("c", path=tmp_path / "q")
    try:
        shard = store.engine.shard("c")
        assert shard is not None and "tags" in shard.engine.info().payload_schema
    finally:
        store.close()
