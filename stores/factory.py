"""Build the stores named by the settings: the one place a backend is chosen."""

from __future__ import annotations

from typing import assert_never

from core.settings import Settings
from stores.catalog import Catalog
from stores.graph import GraphStore
from stores.graph.neo4j import Neo4jGraphStore
from stores.graph.relational import RelationalGraphStore
from stores.vectors import QdrantVectorStore, collection_name


def vector_store(settings: Settings, model_id: str) -> QdrantVectorStore:
    q = settings.qdrant
    return QdrantVectorStore(
        collection_name(q.collection_prefix, model_id),
        url=q.url,
        path=None if q.url else settings.qdrant_path,
        api_key=q.api_key.get_secret_value() if q.api_key else None,
        timeout_s=q.timeout_s,
        shards={
            k: v
            for k, v in (("shard_number", q.shard_number), ("replication_factor", q.replicas))
            if v is not None
        },
    )


def graph_store(settings: Settings, catalog: Catalog) -> GraphStore:
    backend = settings.graph.backend
    match backend:
        case "relational":
            return RelationalGraphStore(catalog)
        case "neo4j":
            n = settings.neo4j
            # Both checked by Settings when the backend is neo4j.
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
