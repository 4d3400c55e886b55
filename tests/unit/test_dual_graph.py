"""Dual write across two graph stores (two SQLite databases here), and the settings that name
them: writes reach both, reads follow the role the catalog records, re-read after recheck_s."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import GraphSettings, Settings
from stores import factory
from stores.catalog import Catalog, migration_state
from stores.graph import GraphChunk, GraphEntity, VersionGraph
from stores.graph.dual import DualGraphStore
from stores.graph.relational import RelationalGraphStore

pytestmark = pytest.mark.unit


def graph(doc: str) -> VersionGraph:
    acme = GraphEntity(key="acme", name="ACME", kind="org")
    return VersionGraph(
        tenant_id="t",
        document_id=doc,
        version_id=f"{doc}-v1",
        title=doc,
        chunks=[GraphChunk(id=f"{doc}-c1", ordinal=0, entity_keys=("acme",))],
        entities=[acme],
    )


def test_settings_refuse_a_secondary_equal_to_the_primary_or_neo4j_without_credentials(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match="same store"):
        Settings(data_dir=tmp_path, graph=GraphSettings(secondary="relational"))
    with pytest.raises(ConfigurationError, match="NEO4J__URI"):
        Settings(data_dir=tmp_path, graph=GraphSettings(secondary="neo4j"))
    ok = Settings(
        data_dir=tmp_path,
        graph=GraphSettings(secondary="relational", secondary_url=f"sqlite:///{tmp_path}/g.db"),
    )
    assert ok.graph_url == ok.catalog_url != ok.graph_secondary_url


def test_writes_reach_both_and_reads_follow_the_recorded_role(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        graph=GraphSettings(
            secondary="relational", secondary_url=f"sqlite:///{tmp_path}/g.db", role_check_s=3600
        ),
    )
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    store = factory.graph_store(settings, catalog)
    assert isinstance(store, DualGraphStore)
    assert isinstance(store.secondary, RelationalGraphStore)
    assert store.secondary.catalog.url != catalog.url  # a database of its own

    store.upsert_version(graph("d1"))
    assert store.primary.chunk_ids("t", "d1") == store.secondary.chunk_ids("t", "d1") == {"d1-c1"}
    extra = graph("d1")
    store.add_chunks(
        VersionGraph(
            tenant_id="t",
            document_id="d1",
            version_id=extra.version_id,
            title="d1",
            chunks=[GraphChunk(id="d1-c2", ordinal=1, entity_keys=("acme",))],
            entities=extra.entities,
        )
    )
    both = {"d1-c1", "d1-c2"}
    assert store.primary.chunk_ids("t", "d1") == store.secondary.chunk_ids("t", "d1") == both
    store.upsert_version(graph("d1"))
    store.secondary.upsert_version(graph("only-secondary"))  # tells the reader apart
    assert store.chunk_ids("t", "only-secondary") == set()

    migration_state.put_state(catalog, migration_state.GRAPH_ROLE, {"reads": "secondary"})
    assert store.chunk_ids("t", "only-secondary") == set()  # cached for role_check_s
    store.refresh()
    assert store.chunk_ids("t", "only-secondary") == {"only-secondary-c1"}

    store.delete_document("t", "d1")
    assert store.primary.chunk_ids("t", "d1") == store.secondary.chunk_ids("t", "d1") == set()
    migration_state.put_state(catalog, migration_state.GRAPH_ROLE, {"reads": "primary"})
    store.refresh()
    assert store.reader is store.primary


class RacingSource:
    """The source store, with a dual write (a new version replacing the old one in both stores)
    landing right after the copy's first read: the read it copies is already stale."""

    def __init__(self, src: RelationalGraphStore, dst: RelationalGraphStore, new: VersionGraph):
        self.src, self.dst, self.new, self.fired = src, dst, new, False

    def export_document(self, tenant_id: str, document_id: str) -> list[VersionGraph]:
        out = self.src.export_document(tenant_id, document_id)
        if not self.fired:
            self.fired = True
            for store in (self.src, self.dst):
                store.upsert_version(self.new)
                store.delete_version(tenant_id, document_id, f"{document_id}-v1")
        return out


def test_a_copy_never_lets_an_old_read_overwrite_a_newer_dual_write(tmp_path: Path) -> None:
    from infra.migrate.graph import copy_document

    stores = []
    for name in ("a", "b"):
        catalog = Catalog(f"sqlite:///{tmp_path / name}.db")
        store = RelationalGraphStore(catalog)
        store.setup()
        stores.append(store)
    src, dst = stores
    src.upsert_version(graph("d1"))
    v2 = VersionGraph(
        tenant_id="t",
        document_id="d1",
        version_id="d1-v2",
        title="d1",
        chunks=[GraphChunk(id="d1-v2-c1", ordinal=0)],
        entities=[],
    )
    copy_document(RacingSource(src, dst, v2), dst, "t", "d1")  # type: ignore[arg-type]
    assert dst.export_document("t", "d1") == src.export_document("t", "d1") == [v2]
