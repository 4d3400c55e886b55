"""Build the stores named by the settings: the one place a backend is chosen."""

from __future__ import annotations

import functools
from typing import assert_never

from core.settings import GraphBackend, Settings
from stores.catalog import Catalog, migration_state
from stores.catalog.database import normalise_url
from stores.graph import GraphStore
from stores.graph.dual import DualGraphStore
from stores.graph.neo4j import Neo4jGraphStore
from stores.graph.relational import RelationalGraphStore
from stores.vectors import VectorStore, collection_name
from stores.vectors.edge import EdgeOptions, EdgeVectorStore
from stores.vectors.qdrant import QdrantVectorStore


def vector_store(settings: Settings, model_id: str) -> VectorStore:
    """A Qdrant server when ``GEDRAG_QDRANT__URL`` is set, else Qdrant's engine embedded on
    the local folder (one process per folder)."""
    q = settings.qdrant
    name = collection_name(q.collection_prefix, model_id)
    if q.url:
        return QdrantVectorStore(
            name,
            url=q.url,
            api_key=q.api_key.get_secret_value() if q.api_key else None,
            timeout_s=q.timeout_s,
            shards={
                k: v
                for k, v in (("shard_number", q.shard_number), ("replication_factor", q.replicas))
                if v is not None
            },
        )
    return EdgeVectorStore(name, path=settings.qdrant_path, options=edge_options(settings))


def edge_options(settings: Settings) -> EdgeOptions:
    q = settings.qdrant
    return EdgeOptions(
        dense_on_disk=q.dense_on_disk,
        sentences_on_disk=q.sentences_on_disk,
        quantization=q.quantization,
        flush_interval_s=q.flush_interval_s,
        indexing_threshold=q.indexing_threshold,
    )


def graph_store(settings: Settings, catalog: Catalog) -> GraphStore:
    """The graph store reads and writes go to: one store, or two in dual write
    (``GEDRAG_GRAPH__SECONDARY``), reads from the one the catalog names (see
    :class:`~stores.graph.dual.DualGraphStore`)."""
    g = settings.graph
    primary = single_graph_store(settings, catalog, g.backend, settings.graph_url)
    if g.secondary is None:
        return primary
    secondary = single_graph_store(settings, catalog, g.secondary, settings.graph_secondary_url)
    return DualGraphStore(
        primary,
        secondary,
        reads_secondary=functools.partial(migration_state.graph_reads_secondary, catalog),
        recheck_s=g.role_check_s,
    )


def single_graph_store(
    settings: Settings, catalog: Catalog, backend: GraphBackend, url: str
) -> GraphStore:
    """One graph store: relational tables in the database at ``url`` (the catalog's own, or
    another one, migrated on open), or Neo4j (GEDRAG_NEO4J__*)."""
    match backend:
        case "relational":
            if normalise_url(url) == catalog.url:
                return RelationalGraphStore(catalog)
            store_r = RelationalGraphStore(Catalog(url, echo=settings.catalog.echo), owns=True)
            store_r.setup()
            return store_r
        case "neo4j":
            n = settings.neo4j
            # Both checked by Settings when a graph store is neo4j.
            assert n.uri is not None
            assert n.password is not None
            store = Neo4jGraphStore(
                n.uri,
                user=n.user,
                password=n.password.get_secret_value(),
                database=n.database,
                timeout_s=n.timeout_s,
            )
            store.setup()
            return store
        case _:
            assert_never(backend)
