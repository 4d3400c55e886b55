"""Embedded stores → production servers: the catalog (SQLite → PostgreSQL), the local Qdrant
folder (→ a Qdrant server) and the graph (→ Neo4j, or relational tables in PostgreSQL).

Stop `gedrag up` first: the local Qdrant folder admits one process, and a copy of a store that
is still being written is stale the moment it ends. Every step is a sync, not a blind copy:
rows and points are upserted by key and what the target holds beyond the source is removed, so
a rerun (after a crash, or to take in late writes) converges to an exact copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

from core.errors import ConfigurationError
from core.settings import GraphBackend, Settings
from infra.migrate.graph import copy_document
from infra.migrate.vectors import all_point_versions, copy_collection
from runtime import Runtime
from stores import factory
from stores.catalog import Catalog
from stores.catalog.database import normalise_url
from stores.catalog.models import Base
from stores.graph import GraphStore
from stores.vectors import VectorStore
from stores.vectors.edge import EdgeVectorStore
from stores.vectors.qdrant import QdrantVectorStore

Progress = Callable[[int, int | None], None]
# Graph tables travel through the GraphStore API (the target may be Neo4j); migration state
# and staged chunk records name the source stores and would mislead the target.
SKIPPED_TABLES = frozenset(
    {"graph_chunks", "graph_documents", "graph_entities", "graph_mentions", "graph_relations"}
    | {"migration_state", "staged_chunks"}
)
ROWS_PER_INSERT = 500


def mask(url: str) -> str:
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


@dataclass(frozen=True)
class Target:
    catalog_url: str | None = None
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_path: str | None = None
    graph_backend: str | None = None  # relational | neo4j
    graph_url: str | None = None


def copy_all(
    rt: Runtime, target: Target, *, dry_run: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if target.catalog_url:
        summary["catalog"] = copy_catalog(rt.catalog, target.catalog_url, dry_run=dry_run)
    if target.qdrant_url or target.qdrant_path:
        summary["vectors"] = copy_vectors(rt, target, dry_run=dry_run, progress=progress)
    if target.graph_backend:
        summary["graph"] = copy_graph(rt, target, dry_run=dry_run, progress=progress)
    if not summary:
        raise ConfigurationError("name at least one target: --catalog-url, --qdrant-url, --graph")
    return summary


# Tables whose rows are never changed nor deleted (the audit trail: triggers refuse it); a row
# already copied is left as it is.
APPEND_ONLY_TABLES = frozenset({"records_audit"})


def copy_catalog(source: Catalog, url: str, *, dry_run: bool = False) -> dict[str, int]:
    """Sync every catalog table into the database at ``url`` (migrated first), parents first."""
    if normalise_url(url) == source.url:
        raise ConfigurationError("the target catalog is the source catalog")
    dest = Catalog(url)
    counts: dict[str, int] = {}
    try:
        if not dry_run:
            dest.migrate()
        tables = [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED_TABLES]
        with source.engine.connect() as src:
            rows_by_table = {
                t.name: [dict(r._mapping) for r in src.execute(sa.select(t))] for t in tables
            }
        if dry_run:
            return {name: len(rows) for name, rows in rows_by_table.items()}
        insert = sqlite_insert if dest.is_sqlite else pg_insert
        with dest.engine.begin() as conn:
            # Children first when removing, parents first when writing (foreign keys).
            for t in reversed(tables):
                if t.name in APPEND_ONLY_TABLES:
                    continue  # never deleted from (database triggers refuse it)
                pk = list(t.primary_key.columns)
                wanted = {tuple(r[c.name] for c in pk) for r in rows_by_table[t.name]}
                held = {tuple(r) for r in conn.execute(sa.select(*pk))}
                for key in held - wanted:
                    conn.execute(
                        sa.delete(t).where(sa.and_(*(c == v for c, v in zip(pk, key, strict=True))))
                    )
            for t in tables:
                rows = rows_by_table[t.name]
                pk_names = [c.name for c in t.primary_key.columns]
                others = [c.name for c in t.columns if c.name not in pk_names]
                for i in range(0, len(rows), ROWS_PER_INSERT):
                    stmt = insert(t).values(rows[i : i + ROWS_PER_INSERT])
                    if others and t.name not in APPEND_ONLY_TABLES:
                        stmt = stmt.on_conflict_do_update(
                            index_elements=pk_names,
                            set_={c: getattr(stmt.excluded, c) for c in others},
                        )
                    else:
                        stmt = stmt.on_conflict_do_nothing()
                    conn.execute(stmt)
                counts[t.name] = len(rows)
    finally:
        dest.dispose()
    return counts


def copy_vectors(
    rt: Runtime, target: Target, *, dry_run: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Sync the serving collection's points into the same-named collection of the target."""
    src = rt.vectors
    if (
        target.qdrant_path
        and Path(target.qdrant_path).resolve() == rt.settings.qdrant_path.resolve()
    ):
        raise ConfigurationError("the target Qdrant folder is the source folder")
    dst: VectorStore = (
        QdrantVectorStore(
            src.collection,
            url=target.qdrant_url,
            api_key=target.qdrant_api_key,
            timeout_s=rt.settings.qdrant.timeout_s,
        )
        if target.qdrant_url
        else EdgeVectorStore(
            src.collection,
            path=Path(str(target.qdrant_path)),
            options=factory.edge_options(rt.settings),
        )
    )
    try:
        held = set(all_point_versions(src))
        if dry_run:
            return {"collection": src.collection, "points": len(held)}
        copied = copy_collection(src, dst, progress=progress)
        extra = [p for p in all_point_versions(dst) if p not in held]
        dst.delete_ids(extra)
        return {"collection": src.collection, "points": copied, "removed": len(extra)}
    finally:
        dst.close()


def copy_graph(
    rt: Runtime, target: Target, *, dry_run: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Sync every document of the serving graph store into the target graph store."""
    backend: GraphBackend
    match target.graph_backend:
        case "relational" | "neo4j" as named:
            backend = named
        case _:
            raise ConfigurationError("--graph must be relational or neo4j")
    url = target.graph_url or target.catalog_url
    if backend == "relational" and not url:
        raise ConfigurationError("a relational target graph needs --graph-url or --catalog-url")
    settings: Settings = rt.settings
    if backend == "neo4j" and not (settings.neo4j.uri and settings.neo4j.password):
        raise ConfigurationError("--graph neo4j needs GEDRAG_NEO4J__URI and GEDRAG_NEO4J__PASSWORD")
    if (
        backend == settings.graph.backend == "relational"
        and url
        and (normalise_url(url) == normalise_url(settings.graph_url))
    ):
        raise ConfigurationError("the target graph database is the source one")
    dest: GraphStore = factory.single_graph_store(
        settings,
        rt.catalog,
        backend,
        url or settings.catalog_url,
    )
    src = rt.graph
    docs: dict[str, str] = {}
    after = None
    while batch := src.documents(after, 1000):
        docs.update(dict(batch))
        after = batch[-1][0]
    if dry_run:
        return {"backend": backend, "documents": len(docs)}
    chunks = 0
    for i, (document_id, tenant_id) in enumerate(sorted(docs.items())):
        chunks += copy_document(src, dest, tenant_id, document_id)
        if progress:
            progress(i + 1, len(docs))
    removed = 0
    after = None
    while batch := dest.documents(after, 1000):
        for document_id, tenant_id in batch:
            if document_id not in docs:
                dest.delete_document(tenant_id, document_id)
                removed += 1
        after = batch[-1][0]
    return {"backend": backend, "documents": len(docs), "chunks": chunks, "removed": removed}
