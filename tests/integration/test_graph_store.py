"""GraphStore conformance (``tests/support/graph_conformance.py``) on every implementation.

* the relational store on SQLite and on the PostgreSQL server;
* the Neo4j store, through the official driver, on the session's Bolt server (ArcadeDB's, or the
  real Neo4j that ``GEDRAG_NEO4J__URI`` names: ``tests/support/bolt_server.py``);
* the dual store, relational + Neo4j (reads served by the Neo4j side, so every read checks that
  the dual write reached it) and relational + relational (reads from the primary).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j.exceptions import ConstraintError, DriverError

from core.errors import StoreUnavailable
from stores.catalog import Catalog
from stores.graph import GraphStore
from stores.graph.dual import DualGraphStore
from stores.graph.neo4j import STATEMENTS, Neo4jGraphStore
from stores.graph.relational import RelationalGraphStore
from tests.support.bolt_server import BoltServer
from tests.support.graph_conformance import GraphStoreConformance, Reopen, version

pytestmark = pytest.mark.integration


def relational(url: str) -> RelationalGraphStore:
    store = RelationalGraphStore(Catalog(url), owns=True)
    store.setup()
    return store


class TestRelationalSQLite(GraphStoreConformance):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'graph.db'}"

    @pytest.fixture
    def store(self, url: str) -> Iterator[GraphStore]:
        store = relational(url)
        yield store
        store.close()

    @pytest.fixture
    def reopen(self, url: str) -> Reopen:
        return lambda: relational(url)


class TestRelationalPostgreSQL(TestRelationalSQLite):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url


class TestNeo4j(GraphStoreConformance):
    @pytest.fixture
    def store(self, neo4j: BoltServer) -> Iterator[GraphStore]:
        store = neo4j.store()
        yield store
        store.close()

    @pytest.fixture
    def reopen(self, neo4j: BoltServer) -> Reopen:
        return neo4j.store

    def test_close_closes_the_driver(self, neo4j: BoltServer) -> None:
        store = neo4j.store()
        store.close()
        with pytest.raises(DriverError, match="closed"):
            store.driver.verify_connectivity()

    def test_two_transactions_merging_one_new_key(
        self, store: Neo4jGraphStore, neo4j: BoltServer
    ) -> None:
        """The engines' one difference that the store handles (``CONFLICT_ATTEMPTS`` in
        stores/graph/neo4j.py), each engine on its side: Neo4j makes the second MERGE of a new
        constrained key wait for the first and match its node; ArcadeDB runs both and refuses
        the later commit with a constraint violation. Either way one node remains."""
        row = {"uid": "t:new", "key": "new", "name": "New", "kind": "org"}
        merge = STATEMENTS["upsert_entities"]
        outcome: list[str] = []
        with (
            store.driver.session(database=neo4j.database) as first,
            store.driver.session(database=neo4j.database) as second,
        ):
            tx1 = first.begin_transaction()
            tx1.run(merge, tenant="t", entities=[row]).consume()

            def other() -> None:
                tx2 = second.begin_transaction()
                tx2.run(merge, tenant="t", entities=[row]).consume()
                tx2.commit()
                outcome.append("committed")

            racer = threading.Thread(target=other)
            racer.start()
            racer.join(5)  # Neo4j: still waiting on the first transaction's lock
            waited = racer.is_alive()
            try:
                tx1.commit()
                outcome.insert(0, "committed")
            except ConstraintError:
                outcome.insert(0, "refused")
            racer.join(60)
        if neo4j.engine == "neo4j":
            assert (waited, outcome) == (True, ["committed", "committed"])
        else:
            assert (waited, outcome) == (False, ["refused", "committed"])
        assert neo4j.run("MATCH (e:Entity {uid: 't:new'}) RETURN count(e) AS n") == [{"n": 1}]

    def test_setup_creates_the_uniqueness_constraints(
        self, store: Neo4jGraphStore, neo4j: BoltServer
    ) -> None:
        names = {r["name"] for r in neo4j.run("SHOW CONSTRAINTS")}
        assert {
            "gedrag_document_id",
            "gedrag_chunk_id",
            "gedrag_entity_uid",
            "gedrag_tenant_lock",
        } <= names
        neo4j.run("CREATE (:Entity {uid: 't:dup'})")
        with pytest.raises(ConstraintError):
            neo4j.run("CREATE (:Entity {uid: 't:dup'})")


class _DualConformance(GraphStoreConformance):
    """Dual write with the relational store (SQLite) as primary; the subclass names the
    secondary and which of the two serves reads."""

    reads_secondary: bool

    @pytest.fixture
    def secondary(self) -> Reopen:
        raise NotImplementedError

    def open(self, tmp_path: Path, secondary: Reopen) -> DualGraphStore:
        return DualGraphStore(
            relational(f"sqlite:///{tmp_path / 'primary.db'}"),
            secondary(),
            reads_secondary=lambda: self.reads_secondary,
        )

    @pytest.fixture
    def store(self, tmp_path: Path, secondary: Reopen) -> Iterator[GraphStore]:
        store = self.open(tmp_path, secondary)
        yield store
        store.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path, secondary: Reopen) -> Reopen:
        return lambda: self.open(tmp_path, secondary)

    def test_writes_reach_both_stores(self, store: DualGraphStore, tenant: str) -> None:
        v1 = version(tenant, "d1", "v1", {"c1": ("acme", "faa"), "c2": ("lyon",)})
        v2 = version(tenant, "d1", "v2", {"c1": ("acme", "paris")})
        store.upsert_version(v1)
        store.add_chunks(v2)
        store.upsert_version(v2)
        store.delete_version(tenant, v1.document_id, v1.version_id)
        assert store.reader is (store.secondary if self.reads_secondary else store.primary)
        for side in (store.primary, store.secondary):
            assert side.export_document(tenant, v1.document_id) == [v2]
            assert side.relations(tenant) == {("acme", "paris"): 1}
            assert side.entity_keys(tenant) == {"acme", "paris"}
        store.delete_document(tenant, v1.document_id)
        assert store.primary.documents(None, 10) == store.secondary.documents(None, 10) == []


class TestDualRelationalNeo4j(_DualConformance):
    """The migration relational → Neo4j after its cutover: reads come from the Neo4j side, so
    every read of the suite checks that the dual write reached it."""

    reads_secondary = True

    @pytest.fixture
    def secondary(self, neo4j: BoltServer) -> Reopen:
        return neo4j.store


class TestDualRelational(_DualConformance):
    """Two relational databases, reads from the primary."""

    reads_secondary = False

    @pytest.fixture
    def secondary(self, tmp_path: Path) -> Reopen:
        return lambda: relational(f"sqlite:///{tmp_path / 'secondary.db'}")


@pytest.mark.parametrize("kind", ["relational-postgresql", "neo4j"])
def test_ping_of_an_unreachable_engine_is_store_unavailable(kind: str) -> None:
    """Nothing listens on port 1: the real driver fails to connect, the store says so."""
    if kind == "neo4j":
        store: GraphStore = Neo4jGraphStore("bolt://127.0.0.1:1", user="neo4j", password="x")
    else:
        store = RelationalGraphStore(Catalog("postgresql+psycopg://postgres@127.0.0.1:1/test"))
    with pytest.raises(StoreUnavailable):
        store.ping()
    store.close()
