"""The production graph store: Neo4j through the official driver.

Every write is a ``MERGE`` on a uniquely constrained key inside one transaction, batched with
``UNWIND``. Entities are keyed by ``uid = tenant_id + ":" + key`` so one single-property
uniqueness constraint (available in Neo4j Community) keeps tenants apart. The writes of one
tenant are serialised by a lock node (``_LOCK_TENANT``), as the relational store's advisory lock
serialises them, so concurrent workers never store a stale RELATED weight.

Every statement the store sends is a module-level constant listed in :data:`STATEMENTS`, so the
unit tier can have each one parsed by Neo4j's own parser (``tests/unit/test_cypher_statements.py``)
and the integration tier runs them all over a real Bolt server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j import exceptions as driver_errors

from core.errors import StoreUnavailable, TransientError
from stores.graph import (
    RELATED_FACTOR,
    DocumentLabels,
    GraphChunk,
    GraphCounts,
    GraphEntity,
    LabelRef,
    VersionGraph,
)

BATCH = 1000

# The one difference between engines the store handles (see `_write`): two transactions that
# MERGE the same new key. Neo4j serialises them on the uniqueness constraint's lock (the second
# waits, then matches the node the first created) and reports any other conflict as a transient
# error, which the driver's `execute_write` retries. Engines with optimistic concurrency, such
# as ArcadeDB's Bolt server (the integration tier's engine), let both run and fail the later
# commit with Neo.ClientError.Schema.ConstraintValidationFailed, which the driver does not retry.
# Every node this store writes is MERGEd on its constrained key, so such a violation can only be
# that race: the transaction (idempotent) runs again and matches the winner's node. Tested on
# both sides: tests/integration/test_graph_store.py (`TestNeo4j`, the engine's own behaviour,
# and the conformance suite's concurrent writers).
CONFLICT_ATTEMPTS = 5
CONFLICT_BACKOFF_S = 0.05  # times the attempt number; a race is lost to a commit already done

CONSTRAINTS = (
    "CREATE CONSTRAINT gedrag_document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT gedrag_chunk_id IF NOT EXISTS FOR (c:Chunk) REQUIRE c.id IS UNIQUE",
    "CREATE CONSTRAINT gedrag_entity_uid IF NOT EXISTS FOR (e:Entity) REQUIRE e.uid IS UNIQUE",
    "CREATE CONSTRAINT gedrag_tenant_lock IF NOT EXISTS "
    "FOR (l:TenantLock) REQUIRE l.tenant IS UNIQUE",
    "CREATE CONSTRAINT gedrag_document_type_uid IF NOT EXISTS "
    "FOR (t:DocumentType) REQUIRE t.uid IS UNIQUE",
    "CREATE CONSTRAINT gedrag_correspondent_uid IF NOT EXISTS "
    "FOR (c:Correspondent) REQUIRE c.uid IS UNIQUE",
    "CREATE INDEX gedrag_chunk_doc IF NOT EXISTS FOR (c:Chunk) ON (c.tenant_id, c.document_id)",
    "CREATE INDEX gedrag_entity_tenant IF NOT EXISTS FOR (e:Entity) ON (e.tenant_id)",
)

# First in every write: serialise the tenant's writers, as the relational store's advisory lock
# does. A write recomputes RELATED weights from the mentions it reads; two writers touching the
# same entities would each count without the other's chunks and the later would store a weight
# short of one (Neo4j reads committed data and, on a dense node of 50+ relationships, creates
# relationships without locking the node; ArcadeDB merges concurrent changes to a record's
# slots). Writing a property of one node per tenant takes Neo4j's exclusive lock on it until the
# commit, and makes an optimistic engine fail the later commit as a transient conflict, retried.
_LOCK_TENANT = """
MERGE (l:TenantLock {tenant: $tenant})
SET l.writes = coalesce(l.writes, 0) + 1
"""

# Detach the selected chunks and return the entity uids they mentioned.
_DETACH_CHUNKS = """
OPTIONAL MATCH (c)-[:MENTIONS]->(e:Entity)
WITH collect(DISTINCT c) AS chunks, collect(DISTINCT e.uid) AS uids
FOREACH (c IN chunks | DETACH DELETE c)
RETURN uids
"""
# ... of a document (or one version of it)
_REMOVE_CHUNKS = (
    """
MATCH (c:Chunk {tenant_id: $tenant})
WHERE c.document_id = $document AND ($version IS NULL OR c.version_id = $version)
"""
    + _DETACH_CHUNKS
)
# ... chosen by id (a re-chunking adds chunks beside a version's others).
_REMOVE_CHUNK_IDS = (
    """
MATCH (c:Chunk {tenant_id: $tenant})
WHERE c.id IN $ids
"""
    + _DETACH_CHUNKS
)

_REMOVE_DOCUMENT = "MATCH (d:Document {id: $document, tenant_id: $tenant}) DETACH DELETE d"

_UPSERT_CHUNKS = """
MERGE (d:Document {id: $document})
SET d.tenant_id = $tenant, d.title = $title
WITH d
UNWIND $chunks AS row
MERGE (c:Chunk {id: row.id})
SET c.tenant_id = $tenant, c.document_id = $document, c.version_id = $version,
    c.ordinal = row.ordinal
MERGE (d)-[:HAS_CHUNK]->(c)
"""

_UPSERT_ENTITIES = """
UNWIND $entities AS row
MERGE (e:Entity {uid: row.uid})
ON CREATE SET e.tenant_id = $tenant, e.key = row.key, e.name = row.name, e.kind = row.kind
"""

_MENTIONS = """
UNWIND $mentions AS row
MATCH (c:Chunk {id: row.chunk})
MATCH (e:Entity {uid: row.uid})
MERGE (c)-[:MENTIONS]->(e)
"""

# Weight of a pair = chunks mentioning both; recomputed for the touched entities only, in two
# statements (drop, then rebuild) so no row of one statement sees another's half-done writes.
_DROP_RELATIONS = """
UNWIND $uids AS uid
MATCH (:Entity {uid: uid})-[r:RELATED]-()
DELETE r
"""

_REBUILD_RELATIONS = """
UNWIND $uids AS uid
MATCH (a:Entity {uid: uid})<-[:MENTIONS]-(c:Chunk)-[:MENTIONS]->(b:Entity)
WITH CASE WHEN a.key < b.key THEN a ELSE b END AS x,
     CASE WHEN a.key < b.key THEN b ELSE a END AS y, c
WITH x, y, count(DISTINCT c) AS weight
MERGE (x)-[r:RELATED]->(y)
SET r.weight = weight
"""

_DROP_ORPHANS = """
UNWIND $uids AS uid
MATCH (e:Entity {uid: uid})
WHERE NOT (e)<-[:MENTIONS]-()
DETACH DELETE e
"""

_COUNTS = """
MATCH (c:Chunk {tenant_id: $tenant, document_id: $document})
WHERE $version IS NULL OR c.version_id = $version
OPTIONAL MATCH (c)-[m:MENTIONS]->()
RETURN count(DISTINCT c) AS chunks, count(m) AS mentions
"""

_ENTITY_KEYS = "MATCH (e:Entity {tenant_id: $tenant}) RETURN e.key AS key"

_RELATIONS = """
MATCH (a:Entity {tenant_id: $tenant})-[r:RELATED]->(b:Entity)
RETURN a.key AS a, b.key AS b, r.weight AS w
"""

_CHUNK_IDS = "MATCH (c:Chunk {tenant_id: $tenant, document_id: $document}) RETURN c.id AS id"

_DOCUMENTS = """
MATCH (d:Document) WHERE $after IS NULL OR d.id > $after
RETURN d.id AS id, d.tenant_id AS tenant ORDER BY d.id LIMIT $limit
"""

_EXPORT = """
MATCH (c:Chunk {tenant_id: $tenant, document_id: $document})
OPTIONAL MATCH (c)-[:MENTIONS]->(e:Entity)
WITH c, collect(e) AS es
OPTIONAL MATCH (d:Document {id: $document, tenant_id: $tenant})
RETURN c.id AS id, c.version_id AS version, c.ordinal AS ordinal,
       [x IN es | {key: x.key, name: x.name, kind: x.kind}] AS entities,
       coalesce(d.title, '') AS title
ORDER BY version, ordinal
"""

_EXPAND = """
UNWIND $keys AS key
MATCH (e:Entity {uid: $tenant + ':' + key})
OPTIONAL MATCH (e)-[:RELATED]-(r:Entity)
WITH collect(DISTINCT e) AS direct, collect(DISTINCT r) AS near
WITH direct, [x IN near WHERE NOT x IN direct] AS related
CALL (direct, related) {
  UNWIND direct AS d
  MATCH (c:Chunk)-[:MENTIONS]->(d)
  RETURN c.id AS chunk, 1.0 AS w
  UNION ALL
  UNWIND related AS d
  MATCH (c:Chunk)-[:MENTIONS]->(d)
  RETURN c.id AS chunk, $factor AS w
}
RETURN chunk, sum(w) AS score
ORDER BY score DESC, chunk
LIMIT $limit
"""

# Access lists (issue #19): who may read a document is a list property of its node; expansion
# for a restricted caller traverses only chunks of documents one of its principals reads, and
# derives "related" from those chunks' co-mentions rather than from RELATED (whose weights
# count chunks the caller may not read).
_SET_READERS = """
MATCH (d:Document {id: $document, tenant_id: $tenant})
SET d.readers = $readers
"""

_READERS = """
MATCH (d:Document {id: $document, tenant_id: $tenant})
RETURN coalesce(d.readers, []) AS readers
"""

_EXPAND_READABLE = """
UNWIND $keys AS key
MATCH (e:Entity {uid: $tenant + ':' + key})<-[:MENTIONS]-(c:Chunk)<-[:HAS_CHUNK]-(d:Document)
WHERE any(p IN coalesce(d.readers, []) WHERE p IN $principals)
WITH collect(DISTINCT e) AS direct, collect(DISTINCT c) AS seen
UNWIND seen AS c
MATCH (c)-[:MENTIONS]->(r:Entity)
WITH direct, collect(DISTINCT r) AS near
WITH direct, [x IN near WHERE NOT x IN direct] AS related
CALL (direct, related) {
  UNWIND direct AS x
  MATCH (d:Document)-[:HAS_CHUNK]->(c:Chunk)-[:MENTIONS]->(x)
  WHERE any(p IN coalesce(d.readers, []) WHERE p IN $principals)
  RETURN c.id AS chunk, 1.0 AS w
  UNION ALL
  UNWIND related AS x
  MATCH (d:Document)-[:HAS_CHUNK]->(c:Chunk)-[:MENTIONS]->(x)
  WHERE any(p IN coalesce(d.readers, []) WHERE p IN $principals)
  RETURN c.id AS chunk, $factor AS w
}
RETURN chunk, sum(w) AS score
ORDER BY score DESC, chunk
LIMIT $limit
"""

# A document's sorting labels (issue #17): its links replaced, type and correspondent nodes
# MERGEd on ``uid = tenant_id + ":" + key`` (one uniqueness constraint each, as entities).
_DROP_LABELS = """
MATCH (d:Document {id: $document, tenant_id: $tenant})-[r:OF_TYPE|FROM|TO]->()
DELETE r
"""

_ADD_TYPE = """
MATCH (d:Document {id: $document, tenant_id: $tenant})
UNWIND $rows AS row
MERGE (t:DocumentType {uid: $tenant + ':' + row.key})
SET t.tenant_id = $tenant, t.key = row.key, t.name = row.name
MERGE (d)-[:OF_TYPE]->(t)
"""

_ADD_FROM = """
MATCH (d:Document {id: $document, tenant_id: $tenant})
UNWIND $rows AS row
MERGE (c:Correspondent {uid: $tenant + ':' + row.key})
SET c.tenant_id = $tenant, c.key = row.key, c.name = row.name
MERGE (d)-[:FROM]->(c)
"""

_ADD_TO = """
MATCH (d:Document {id: $document, tenant_id: $tenant})
UNWIND $rows AS row
MERGE (c:Correspondent {uid: $tenant + ':' + row.key})
SET c.tenant_id = $tenant, c.key = row.key, c.name = row.name
MERGE (d)-[:TO]->(c)
"""

_LABELS = """
MATCH (d:Document {id: $document, tenant_id: $tenant})-[r:OF_TYPE|FROM|TO]->(x)
RETURN type(r) AS relation, x.key AS key, x.name AS name
"""

# Every statement this module can send, by name: the constraints of `setup` and each complete
# statement (a composed one as sent, never a fragment such as `_DETACH_CHUNKS` alone).
STATEMENTS: dict[str, str] = {
    **{f"setup[{i}]": s for i, s in enumerate(CONSTRAINTS)},
    "lock_tenant": _LOCK_TENANT,
    "remove_chunks": _REMOVE_CHUNKS,
    "remove_chunk_ids": _REMOVE_CHUNK_IDS,
    "remove_document": _REMOVE_DOCUMENT,
    "upsert_chunks": _UPSERT_CHUNKS,
    "upsert_entities": _UPSERT_ENTITIES,
    "mentions": _MENTIONS,
    "drop_relations": _DROP_RELATIONS,
    "rebuild_relations": _REBUILD_RELATIONS,
    "drop_orphans": _DROP_ORPHANS,
    "counts": _COUNTS,
    "entity_keys": _ENTITY_KEYS,
    "relations": _RELATIONS,
    "chunk_ids": _CHUNK_IDS,
    "documents": _DOCUMENTS,
    "export": _EXPORT,
    "expand": _EXPAND,
    "drop_labels": _DROP_LABELS,
    "add_type": _ADD_TYPE,
    "add_from": _ADD_FROM,
    "add_to": _ADD_TO,
    "labels": _LABELS,
    "set_readers": _SET_READERS,
    "readers": _READERS,
    "expand_readable": _EXPAND_READABLE,
}


class Neo4jGraphStore:
    def __init__(
        self, uri: str, *, user: str, password: str, database: str = "neo4j", timeout_s: float = 10
    ) -> None:
        self.database = database
        self.driver: Driver = GraphDatabase.driver(
            uri, auth=(user, password), connection_timeout=timeout_s
        )

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except (
            driver_errors.ServiceUnavailable,
            driver_errors.SessionExpired,
            driver_errors.TransientError,
            OSError,
        ) as exc:
            raise StoreUnavailable(f"Neo4j unavailable during {what}: {exc}") from exc

    def _write(self, what: str, work: Any, **params: Any) -> Any:
        """Run ``work`` in a write transaction, again after a lost MERGE race (see
        ``CONFLICT_ATTEMPTS``); still lost after that, a :class:`TransientError` (retryable)."""
        attempt = 1
        while True:
            try:
                with self._guard(what), self.driver.session(database=self.database) as s:
                    return s.execute_write(work, **params)
            except driver_errors.ConstraintError as exc:
                if attempt == CONFLICT_ATTEMPTS:
                    raise TransientError(
                        f"Neo4j write conflict during {what}, {attempt} attempts: {exc}"
                    ) from exc
                time.sleep(CONFLICT_BACKOFF_S * attempt)
                attempt += 1

    def _read(self, what: str, query: str, **params: Any) -> list[dict[str, Any]]:
        with self._guard(what), self.driver.session(database=self.database) as s:
            return [r.data() for r in s.run(query, **params)]

    def setup(self) -> None:
        with self._guard("setup"), self.driver.session(database=self.database) as s:
            for statement in CONSTRAINTS:
                s.run(statement).consume()

    def ping(self) -> None:
        with self._guard("ping"):
            self.driver.verify_connectivity()

    def close(self) -> None:
        """Close the driver and its connection pool (idempotent)."""
        self.driver.close()

    def upsert_version(self, graph: VersionGraph) -> None:
        self._upsert(graph, replace_version=True)

    def add_chunks(self, graph: VersionGraph) -> None:
        self._upsert(graph, replace_version=False)

    def _upsert(self, graph: VersionGraph, *, replace_version: bool) -> None:
        """Write the version's chunks after removing the version's chunks (or only these)."""
        t = graph.tenant_id
        entities = {e.key: e for e in graph.entities}
        chunks = [{"id": c.id, "ordinal": c.ordinal} for c in graph.chunks]
        ents = [
            {"uid": f"{t}:{e.key}", "key": e.key, "name": e.name, "kind": e.kind}
            for e in entities.values()
        ]
        mentions = [
            {"chunk": c.id, "uid": f"{t}:{k}"}
            for c in graph.chunks
            for k in sorted(set(c.entity_keys))
            if k in entities
        ]

        def work(tx: ManagedTransaction) -> None:
            tx.run(_LOCK_TENANT, tenant=t).consume()
            removed = (
                tx.run(
                    _REMOVE_CHUNKS, tenant=t, document=graph.document_id, version=graph.version_id
                )
                if replace_version
                else tx.run(_REMOVE_CHUNK_IDS, tenant=t, ids=[c["id"] for c in chunks])
            )
            touched = set(removed.single(strict=True)["uids"])
            for i in range(0, max(len(chunks), 1), BATCH):
                tx.run(
                    _UPSERT_CHUNKS,
                    tenant=t,
                    document=graph.document_id,
                    version=graph.version_id,
                    title=graph.title,
                    chunks=chunks[i : i + BATCH],
                ).consume()
            for i in range(0, len(ents), BATCH):
                tx.run(_UPSERT_ENTITIES, tenant=t, entities=ents[i : i + BATCH]).consume()
            for i in range(0, len(mentions), BATCH):
                tx.run(_MENTIONS, mentions=mentions[i : i + BATCH]).consume()
            touched |= {m["uid"] for m in mentions}
            _refresh(tx, sorted(touched))
            if graph.readers is not None:
                tx.run(
                    _SET_READERS,
                    tenant=t,
                    document=graph.document_id,
                    readers=sorted(set(graph.readers)),
                ).consume()

        self._write("upsert", work)

    def delete_version(self, tenant_id: str, document_id: str, version_id: str) -> None:
        self._delete(tenant_id, document_id, version_id)

    def delete_document(self, tenant_id: str, document_id: str) -> None:
        self._delete(tenant_id, document_id, None)

    def _delete(self, tenant_id: str, document_id: str, version_id: str | None) -> None:
        def work(tx: ManagedTransaction) -> None:
            tx.run(_LOCK_TENANT, tenant=tenant_id).consume()
            uids = tx.run(
                _REMOVE_CHUNKS, tenant=tenant_id, document=document_id, version=version_id
            ).single(strict=True)["uids"]
            if version_id is None:
                tx.run(_REMOVE_DOCUMENT, document=document_id, tenant=tenant_id).consume()
            _refresh(tx, sorted(uids))

        self._write("delete", work)

    def set_labels(self, tenant_id: str, document_id: str, labels: DocumentLabels) -> None:
        def rows(ref: LabelRef | None) -> list[dict[str, str]]:
            return [] if ref is None else [{"key": ref.key, "name": ref.name}]

        def work(tx: ManagedTransaction) -> None:
            t, d = tenant_id, document_id
            tx.run(_DROP_LABELS, tenant=t, document=d).consume()
            tx.run(_ADD_TYPE, tenant=t, document=d, rows=rows(labels.document_type)).consume()
            tx.run(_ADD_FROM, tenant=t, document=d, rows=rows(labels.issuer)).consume()
            tx.run(_ADD_TO, tenant=t, document=d, rows=rows(labels.recipient)).consume()

        self._write("labels", work)

    def labels(self, tenant_id: str, document_id: str) -> DocumentLabels:
        found = {
            r["relation"]: LabelRef(r["key"], r["name"])
            for r in self._read("labels", _LABELS, tenant=tenant_id, document=document_id)
        }
        return DocumentLabels(found.get("OF_TYPE"), found.get("FROM"), found.get("TO"))

    def set_readers(self, tenant_id: str, document_id: str, readers: Sequence[str]) -> None:
        def work(tx: ManagedTransaction) -> None:
            tx.run(
                _SET_READERS, tenant=tenant_id, document=document_id, readers=sorted(set(readers))
            ).consume()

        self._write("readers", work)

    def readers(self, tenant_id: str, document_id: str) -> tuple[str, ...]:
        rows = self._read("readers", _READERS, tenant=tenant_id, document=document_id)
        return tuple(sorted(rows[0]["readers"])) if rows else ()

    def counts(
        self, tenant_id: str, document_id: str, version_id: str | None = None
    ) -> GraphCounts:
        rows = self._read(
            "counts", _COUNTS, tenant=tenant_id, document=document_id, version=version_id
        )
        return GraphCounts(chunks=rows[0]["chunks"], mentions=rows[0]["mentions"])

    def entity_keys(self, tenant_id: str) -> set[str]:
        rows = self._read("entities", _ENTITY_KEYS, tenant=tenant_id)
        return {r["key"] for r in rows}

    def relations(self, tenant_id: str) -> dict[tuple[str, str], int]:
        rows = self._read("relations", _RELATIONS, tenant=tenant_id)
        return {(r["a"], r["b"]): r["w"] for r in rows}

    def chunk_ids(self, tenant_id: str, document_id: str) -> set[str]:
        rows = self._read("chunk ids", _CHUNK_IDS, tenant=tenant_id, document=document_id)
        return {r["id"] for r in rows}

    def documents(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        rows = self._read("documents", _DOCUMENTS, after=after, limit=limit)
        return [(r["id"], r["tenant"]) for r in rows]

    def export_document(self, tenant_id: str, document_id: str) -> list[VersionGraph]:
        rows = self._read("export", _EXPORT, tenant=tenant_id, document=document_id)
        # None when it has none: an import then gives it none either.
        readers = self.readers(tenant_id, document_id) or None
        versions: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            versions.setdefault(r["version"], []).append(r)
        out: list[VersionGraph] = []
        for version_id, chunks in versions.items():
            entities = {e["key"]: e for r in chunks for e in r["entities"]}
            out.append(
                VersionGraph(
                    tenant_id=tenant_id,
                    document_id=document_id,
                    version_id=version_id,
                    title=chunks[0]["title"],
                    chunks=[
                        GraphChunk(
                            id=r["id"],
                            ordinal=r["ordinal"],
                            entity_keys=tuple(sorted(e["key"] for e in r["entities"])),
                        )
                        for r in chunks
                    ],
                    entities=[
                        GraphEntity(key=k, name=entities[k]["name"], kind=entities[k]["kind"])
                        for k in sorted(entities)
                    ],
                    readers=readers,
                )
            )
        return out

    def expand(
        self,
        tenant_id: str,
        keys: Sequence[str],
        limit: int,
        principals: Sequence[str] | None = None,
    ) -> dict[str, float]:
        if not keys:
            return {}
        params: dict[str, Any] = {
            "tenant": tenant_id,
            "keys": list(keys),
            "factor": RELATED_FACTOR,
            "limit": limit,
        }
        if principals is None:
            rows = self._read("expand", _EXPAND, **params)
        else:
            rows = self._read("expand", _EXPAND_READABLE, principals=list(principals), **params)
        return {r["chunk"]: float(r["score"]) for r in rows}


def _refresh(tx: ManagedTransaction, uids: list[str]) -> None:
    for i in range(0, len(uids), BATCH):
        batch = uids[i : i + BATCH]
        tx.run(_DROP_RELATIONS, uids=batch).consume()
    for i in range(0, len(uids), BATCH):
        batch = uids[i : i + BATCH]
        tx.run(_REBUILD_RELATIONS, uids=batch).consume()
        tx.run(_DROP_ORPHANS, uids=batch).consume()
