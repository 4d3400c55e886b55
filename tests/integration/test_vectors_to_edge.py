"""Upgrade of an embedded vector folder made by the previous release (qdrant-client local mode,
as ``QdrantVectorStore(path=...)`` wrote it: named dense + sentences multivector + sparse with
IDF, no payload indexes, an alias) to Qdrant Edge: interrupted and resumed, counts compared,
the answers of the old engine kept, the old folder kept aside until finalized."""

from __future__ import annotations

import fcntl
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from core import ids
from core.errors import ConfigurationError, Conflict
from core.settings import Settings
from infra.migrate import to_edge
from runtime import Runtime
from stores.catalog import migration_state
from stores.vectors import DENSE, SENTENCES, SPARSE, SearchFilter
from stores.vectors.edge import EdgeVectorStore
from tests.support.vector_store_conformance import cosine

pytestmark = pytest.mark.integration

DIM = 8
LIVE = "gedrag_all_minilm_l6_v2"
PHYSICAL = f"{LIVE}__abc12345"
BARE = "gedrag_old_model"  # made before sentence vectors


def legacy_folder(path: Path, rng: random.Random) -> QdrantClient:
    """The previous release's layout, written by qdrant-client's local mode."""
    client = QdrantClient(path=str(path))
    client.create_collection(
        PHYSICAL,
        vectors_config={
            DENSE: models.VectorParams(size=DIM, distance=models.Distance.COSINE),
            SENTENCES: models.VectorParams(
                size=DIM,
                distance=models.Distance.COSINE,
                multivector_config=models.MultiVectorConfig(
                    comparator=models.MultiVectorComparator.MAX_SIM
                ),
                hnsw_config=models.HnswConfigDiff(m=0),
            ),
        },
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.create_collection(
        BARE,
        vectors_config={DENSE: models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=PHYSICAL, alias_name=LIVE)
            )
        ]
    )
    for name, n, sentences in ((PHYSICAL, 1200, True), (BARE, 100, False)):
        points = []
        for i in range(n):
            terms = sorted(rng.sample(range(300), 6))
            vector: dict[str, Any] = {
                DENSE: [rng.gauss(0, 1) for _ in range(DIM)],
                SPARSE: models.SparseVector(
                    indices=terms, values=[rng.uniform(0.2, 2.0) for _ in terms]
                ),
            }
            if sentences and i % 5:
                vector[SENTENCES] = [[rng.gauss(0, 1) for _ in range(DIM)] for _ in range(3)]
            points.append(
                models.PointStruct(
                    id=ids.stable_uuid(name, str(i)),
                    vector=vector,
                    payload={
                        "tenant_id": f"t{i % 3}",
                        "document_id": f"d{i % 40}",
                        "version_id": "v1",
                        "tags": [f"g{i % 4}"],
                        "metadata": {"n": i % 7},
                        "uploaded_at": float(i),
                        "text": f"chunk {i}",
                    },
                )
            )
        client.upsert(name, points)
    return client


Answers = dict[str, Any]


def reference(client: QdrantClient, rng: random.Random) -> tuple[list[dict[str, Any]], Answers]:
    """Queries and what qdrant-client's own engine answers them."""
    queries: list[dict[str, Any]] = []
    for n in range(6):
        queries.append(
            {
                "dense": [rng.gauss(0, 1) for _ in range(DIM)],
                "terms": sorted(rng.sample(range(300), 3)),
                "tenant": f"t{n % 3}",
                "tags": ["g1", "g2"] if n % 2 else None,
                "named": [ids.stable_uuid(PHYSICAL, str(i)) for i in rng.sample(range(1200), 60)],
            }
        )
    answers: Answers = {}
    for n, q in enumerate(queries):
        must: list[models.Condition] = [
            models.FieldCondition(key="tenant_id", match=models.MatchValue(value=q["tenant"]))
        ]
        if q["tags"]:
            must.append(models.FieldCondition(key="tags", match=models.MatchAny(any=q["tags"])))
        flt = models.Filter(must=must)
        dense = client.query_points(LIVE, query=q["dense"], using=DENSE, query_filter=flt, limit=10)
        sparse = client.query_points(
            LIVE,
            query=models.SparseVector(indices=q["terms"], values=[1.0] * 3),
            using=SPARSE,
            query_filter=flt,
            limit=10,
        )
        named = models.Filter(must=[models.HasIdCondition(has_id=q["named"]), *must])
        maxsim = client.query_points(
            LIVE, query=[q["dense"]], using=SENTENCES, query_filter=named, limit=60
        )
        answers[str(n)] = {
            "dense": [(str(p.id), p.score) for p in dense.points],
            "sparse": [(str(p.id), p.score) for p in sparse.points],
            "maxsim": {str(p.id): p.score for p in maxsim.points},
        }
    return queries, answers


@pytest.fixture
def upgrade(make_settings: Callable[..., Settings]) -> Iterator[tuple[Runtime, list, Answers]]:
    settings = make_settings()
    rng = random.Random(11)
    client = legacy_folder(settings.qdrant_path, rng)
    queries, answers = reference(client, rng)
    client.close()
    rt = Runtime.build(settings)
    yield rt, queries, answers
    rt.close()


def test_a_folder_of_the_previous_release_is_converted_resumably(
    upgrade: tuple[Runtime, list[dict[str, Any]], Answers],
) -> None:
    rt, queries, answers = upgrade
    path, old = rt.settings.qdrant_path, to_edge.aside(rt.settings)
    assert to_edge.pending(rt)
    planned = to_edge.convert(rt, dry_run=True)
    assert planned["collections"] == {PHYSICAL: 1200, BARE: 100}
    assert planned["aliases"] == {LIVE: PHYSICAL}
    assert (path / "meta.json").is_file() and not old.exists()  # a dry run changes nothing

    class Stop(Exception):
        pass

    seen: list[int] = []

    def stop_after_two_pages(done: int, _total: int | None) -> None:
        seen.append(done)
        if done >= 1000:
            raise Stop

    with pytest.raises(Stop):
        to_edge.convert(rt, progress=stop_after_two_pages)
    assert (old / "meta.json").is_file() and not (path / "meta.json").exists()
    state = migration_state.get_state(rt.catalog, to_edge.STATE_KEY)
    assert state is not None and state["collections"][PHYSICAL]["copied"] == 1000
    assert to_edge.pending(rt)
    with pytest.raises(ConfigurationError, match="being converted"):
        EdgeVectorStore(LIVE, path=path)  # never served half-converted

    resumed: list[int] = []
    summary = to_edge.convert(rt, progress=lambda done, _t: resumed.append(done))
    assert resumed[0] == 1200  # resumed at the checkpoint: only the last page was copied
    assert summary["converted"] is True
    assert {n: c["copied"] for n, c in summary["collections"].items()} == {
        PHYSICAL: 1200,
        BARE: 100,
    }
    assert summary["aliases"] == {LIVE: PHYSICAL}
    assert not to_edge.pending(rt)
    assert to_edge.convert(rt)["converted"] is False  # done: a rerun is a no-op

    store = EdgeVectorStore(LIVE, path=path)
    try:
        assert store.alias_target() == PHYSICAL and store.has_sentences()
        bare = store.sibling(BARE)
        assert bare.dim() == DIM and not bare.has_sentences() and bare.info()["points"] == 100
        for n, q in enumerate(queries):
            flt = SearchFilter(tenant_id=q["tenant"], tags=q["tags"])
            want = answers[str(n)]
            dense = [(h.id, h.score) for h in store.search_dense(q["dense"], flt, 10)]
            assert [i for i, _ in dense] == [i for i, _ in want["dense"]]
            assert [s for _, s in dense] == pytest.approx([s for _, s in want["dense"]], abs=1e-4)
            sparse = store.search_sparse(q["terms"], [1.0] * 3, flt, 10)
            assert [h.score for h in sparse] == pytest.approx(
                [s for _, s in want["sparse"]], rel=1e-4
            )
            maxsim = store.score_sentences(q["dense"], q["named"], flt)
            assert maxsim == pytest.approx(want["maxsim"], abs=1e-4)
            assert maxsim  # some named points pass the filter and hold sentences
        # Whole points came over: payloads and the vectors' directions.
        page, _ = store.scroll_points(None, 5)
        assert all(p.payload["text"].startswith("chunk ") for p in page)
        assert all(cosine(p.dense, p.dense) == pytest.approx(1.0) for p in page)
    finally:
        store.close()

    assert (old / "meta.json").is_file()  # kept aside until finalized
    assert to_edge.finalize(rt, dry_run=True) == {"deleted": str(old)} and old.exists()
    assert to_edge.finalize(rt) == {"deleted": str(old)}
    assert not old.exists()


def test_a_conversion_waits_for_an_older_gedrag_still_running(
    upgrade: tuple[Runtime, list[dict[str, Any]], Answers],
) -> None:
    rt, _, _ = upgrade
    path = rt.settings.qdrant_path
    fd = os.open(path / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as its qdrant-client holds it
    try:
        with pytest.raises(ConfigurationError, match="used by another process"):
            to_edge.convert(rt)
        assert (path / "meta.json").is_file()  # untouched
    finally:
        os.close(fd)
    assert to_edge.convert(rt)["converted"] is True


def test_restart_copies_again_and_two_folders_are_a_conflict(
    upgrade: tuple[Runtime, list[dict[str, Any]], Answers],
) -> None:
    rt, _, _ = upgrade
    to_edge.convert(rt)
    again = to_edge.convert(rt, restart=True)
    assert {n: c["copied"] for n, c in again["collections"].items()} == {
        PHYSICAL: 1200,
        BARE: 100,
    }
    # An old layout back in place (a restored backup?) beside the one kept aside.
    (rt.settings.qdrant_path / "meta.json").write_text('{"collections": {}, "aliases": {}}')
    with pytest.raises(Conflict, match="keep one"):
        to_edge.convert(rt)
