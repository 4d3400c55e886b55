"""GraphStore conformance: the same behaviour from every implementation.

Runs against the relational store on SQLite and on the PostgreSQL server, and against Neo4j when
GEDRAG_NEO4J__URI (with GEDRAG_NEO4J__PASSWORD) points to a server; otherwise the Neo4j case
skips and says so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from core.errors import StoreUnavailable
from stores.catalog import Catalog
from stores.graph import GraphChunk, GraphEntity, GraphStore, VersionGraph
from stores.graph.neo4j import Neo4jGraphStore
from stores.graph.relational import RelationalGraphStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["relational-sqlite", "relational-postgresql", "neo4j"])
def graph(request: pytest.FixtureRequest, tmp_path) -> Iterator[GraphStore]:  # type: ignore[no-untyped-def]
    if request.param == "neo4j":
        uri = os.environ.get("GEDRAG_NEO4J__URI")
        if not uri:
            pytest.skip("Neo4j conformance runs when GEDRAG_NEO4J__URI points to a server")
        store = Neo4jGraphStore(
            uri,
            user=os.environ.get("GEDRAG_NEO4J__USER", "neo4j"),
            password=os.environ.get("GEDRAG_NEO4J__PASSWORD", ""),
        )
        store.setup()
        yield store
        store.close()
        return
    url = (
        f"sqlite:///{tmp_path / 'g.db'}"
        if request.param.endswith("sqlite")
        else request.getfixturevalue("postgres_url")
    )
    catalog = Catalog(url)
    store_r = RelationalGraphStore(catalog)
    store_r.setup()
    yield store_r
    catalog.dispose()


@pytest.fixture
def tenant() -> str:
    # Unique per test: the Neo4j server may be shared and is not wiped between tests.
    return f"t-{uuid.uuid4().hex[:8]}"


E = {k: GraphEntity(key=k, name=k.upper(), kind="org") for k in ("acme", "faa", "lyon", "paris")}


def version(tenant: str, doc: str, ver: str, chunks: dict[str, tuple[str, ...]]) -> VersionGraph:
    used = {k for keys in chunks.values() for k in keys}
    return VersionGraph(
        tenant_id=tenant,
        document_id=f"{tenant}-{doc}",
        version_id=f"{tenant}-{doc}-{ver}",
        title=doc,
        chunks=[
            GraphChunk(id=f"{tenant}-{doc}-{ver}-{cid}", ordinal=i, entity_keys=keys)
            for i, (cid, keys) in enumerate(chunks.items())
        ],
        entities=[E[k] for k in sorted(used)],
    )


def test_upsert_is_idempotent_and_counts(graph: GraphStore, tenant: str) -> None:
    v1 = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("acme", "lyon"), "c3": ()})
    graph.upsert_version(v1)
    graph.upsert_version(v1)
    counts = graph.counts(tenant, v1.document_id)
    assert (counts.chunks, counts.mentions) == (3, 4)
    assert graph.entity_keys(tenant) == {"acme", "faa", "lyon"}
    assert graph.relations(tenant) == {("acme", "faa"): 1, ("acme", "lyon"): 1}
    assert graph.chunk_ids(tenant, v1.document_id) == {c.id for c in v1.chunks}


def test_added_chunks_sit_beside_the_versions_others_until_an_upsert_replaces_them(
    graph: GraphStore, tenant: str
) -> None:
    """A re-chunking adds its chunks to a version, then its switch keeps only them."""
    old = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("lyon",)})
    new = version(tenant, "d1", "v1", {"n1": ("acme",), "n2": ("faa", "paris")})
    graph.upsert_version(old)
    graph.add_chunks(new)
    graph.add_chunks(new)  # idempotent
    counts = graph.counts(tenant, old.document_id, old.version_id)
    assert (counts.chunks, counts.mentions) == (4, 6)
    assert graph.chunk_ids(tenant, old.document_id) == {c.id for c in [*old.chunks, *new.chunks]}
    assert graph.relations(tenant) == {("acme", "faa"): 1, ("faa", "paris"): 1}

    graph.add_chunks(version(tenant, "d1", "v1", {"n2": ("lyon",)}))  # its mentions replaced
    assert graph.counts(tenant, old.document_id).mentions == 5
    assert graph.relations(tenant) == {("acme", "faa"): 1}
    assert graph.entity_keys(tenant) == {"acme", "faa", "lyon"}  # paris: no mention left

    graph.upsert_version(new)  # the switch: the version holds the new chunks only
    assert graph.chunk_ids(tenant, old.document_id) == {c.id for c in new.chunks}
    assert graph.entity_keys(tenant) == {"acme", "faa", "paris"}
    assert graph.relations(tenant) == {("faa", "paris"): 1}


def test_relation_weights_follow_documents(graph: GraphStore, tenant: str) -> None:
    graph.upsert_version(version(tenant, "d1", "v1", {"c1": ("acme", "faa")}))
    graph.upsert_version(
        version(tenant, "d2", "v1", {"c1": ("acme", "faa"), "c2": ("faa", "acme")})
    )
    assert graph.relations(tenant) == {("acme", "faa"): 3}
    graph.delete_document(tenant, f"{tenant}-d2")
    assert graph.relations(tenant) == {("acme", "faa"): 1}
    assert graph.counts(tenant, f"{tenant}-d2").chunks == 0


def test_new_version_replaces_old_and_orphans_go(graph: GraphStore, tenant: str) -> None:
    v1 = version(tenant, "d1", "v1", {"c1": ("acme", "paris")})
    v2 = version(tenant, "d1", "v2", {"c1": ("acme", "lyon")})
    graph.upsert_version(v1)
    graph.upsert_version(v2)
    assert graph.counts(tenant, v1.document_id, v2.version_id).chunks == 1
    assert graph.counts(tenant, v1.document_id).chunks == 2  # both until v1 is dropped
    graph.delete_version(tenant, v1.document_id, v1.version_id)
    assert graph.counts(tenant, v1.document_id).chunks == 1
    assert graph.entity_keys(tenant) == {"acme", "lyon"}  # "paris" had no other mention
    assert graph.relations(tenant) == {("acme", "lyon"): 1}
    graph.delete_document(tenant, v1.document_id)
    assert graph.entity_keys(tenant) == set()
    assert graph.relations(tenant) == {}
    graph.delete_document(tenant, v1.document_id)  # absent: no-op


def test_tenants_are_separate(graph: GraphStore, tenant: str) -> None:
    other = f"{tenant}-other"
    graph.upsert_version(version(tenant, "d1", "v1", {"c1": ("acme", "faa")}))
    graph.upsert_version(version(other, "d1", "v1", {"c1": ("acme",)}))
    assert graph.relations(other) == {}
    graph.delete_document(other, f"{other}-d1")
    assert graph.entity_keys(tenant) == {"acme", "faa"}
    assert graph.entity_keys(other) == set()
    assert graph.counts(other, f"{tenant}-d1").chunks == 0  # another tenant's document is invisible


def test_large_version_in_batches(graph: GraphStore, tenant: str) -> None:
    chunks = {f"c{i}": (("acme", "faa") if i % 2 else ("lyon",)) for i in range(1200)}
    v = version(tenant, "big", "v1", chunks)
    graph.upsert_version(v)
    counts = graph.counts(tenant, v.document_id)
    assert (counts.chunks, counts.mentions) == (1200, 1800)
    assert graph.relations(tenant) == {("acme", "faa"): 600}


def test_expansion_reaches_mentions_and_related_entities(graph: GraphStore, tenant: str) -> None:
    v = version(
        tenant,
        "d1",
        "v1",
        {"c1": ("acme", "faa"), "c2": ("faa",), "c3": ("lyon",), "c4": ("acme",)},
    )
    graph.upsert_version(v)
    ids = {c.ordinal: c.id for c in v.chunks}
    got = graph.expand(tenant, ["acme"], limit=10)
    # c1 mentions acme (1) and faa, related to acme (0.5); c4 acme (1); c2 faa only (0.5)
    assert got == {ids[0]: 1.5, ids[3]: 1.0, ids[1]: 0.5}
    assert list(graph.expand(tenant, ["acme"], limit=1)) == [ids[0]]
    assert graph.expand(tenant, [], limit=5) == {}
    assert graph.expand(f"{tenant}-other", ["acme"], limit=5) == {}


def test_export_rebuilds_the_document_elsewhere_and_documents_page_by_id(
    graph: GraphStore, tenant: str
) -> None:
    v1 = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("lyon",), "c3": ()})
    v2 = version(tenant, "d1", "v2", {"c1": ("paris",)})
    graph.upsert_version(v1)
    graph.upsert_version(v2)
    graph.upsert_version(version(tenant, "d2", "v1", {"c1": ("acme",)}))
    exported = graph.export_document(tenant, v1.document_id)
    assert exported == sorted([v1, v2], key=lambda v: v.version_id)
    assert graph.export_document(f"{tenant}-other", v1.document_id) == []

    # Upserting the export under another tenant rebuilds the same graph there.
    other = f"{tenant}-copy"
    for v in exported:
        graph.upsert_version(
            VersionGraph(
                tenant_id=other,
                document_id=f"{other}-d1",
                version_id=v.version_id.replace(tenant, other),
                title=v.title,
                chunks=[
                    GraphChunk(
                        id=c.id.replace(tenant, other), ordinal=c.ordinal, entity_keys=c.entity_keys
                    )
                    for c in v.chunks
                ],
                entities=v.entities,
            )
        )
    assert graph.relations(other) == {("acme", "faa"): 1}
    assert graph.entity_keys(other) == {"acme", "faa", "lyon", "paris"}
    assert graph.counts(other, f"{other}-d1") == graph.counts(tenant, v1.document_id)

    mine = {f"{tenant}-d1", f"{tenant}-d2"}
    seen: list[tuple[str, str]] = []
    after = None
    while batch := graph.documents(after, 1):
        seen.extend(batch)
        after = batch[-1][0]
    ids = [d for d, _ in seen]
    assert len(ids) == len(set(ids))  # paging by id neither repeats nor skips
    assert {(d, t) for d, t in seen if d in mine} == {(d, tenant) for d in mine}


def test_ping_answers(graph: GraphStore) -> None:
    graph.ping()


@pytest.mark.parametrize("kind", ["relational-postgresql", "neo4j"])
def test_ping_of_an_unreachable_engine_is_store_unavailable(kind: str) -> None:
    """Nothing listens on port 1: the real driver fails to connect, the store says so."""
    if kind == "neo4j":
        store: GraphStore = Neo4jGraphStore("bolt://127.0.0.1:1", user="neo4j", password="x")
    else:
        catalog = Catalog("postgresql+psycopg://postgres@127.0.0.1:1/test")
        store = RelationalGraphStore(catalog)
    with pytest.raises(StoreUnavailable):
        store.ping()
