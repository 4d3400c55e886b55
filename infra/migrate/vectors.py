"""Re-embedding into a new Qdrant collection while the old one serves, then one alias switch.

Readers and writers address a collection by its logical name, ``<prefix>_<model>``. A rebuild
(another model, other sparse weights) fills a physical collection ``<logical>__<config hash>``
from the catalog's chunk records while queries keep going to the old one; ``switch`` then
catches up what changed meanwhile and points the alias at the new collection in one Qdrant
request (``update_collection_aliases``: atomic). Embedded (Qdrant Edge, one process per folder)
the process serving queries runs the switch itself: it holds the store for the short catch-up,
moves the alias gedrag keeps, and no reader ever sees a half-filled collection. The old
collection stays until ``finalize`` (``rollback`` points the alias back). A logical name that
is still a plain collection (made before aliases) is first copied to ``<logical>__legacy``.

Other chunk parameters change the chunk ids (they derive from the chunker's configuration), so
a re-chunking also builds new chunk records: each active version's original is parsed and
chunked again, the records are staged in the catalog under the new collection's name
(:mod:`stores.catalog.staging`) and embedded into it, and their chunks are added to the graph
beside the old ones (expansion may reach them early: retrieval drops ids the serving collection
does not hold). The switch swaps the staged records with the catalog's in one transaction,
keeping the old ones staged under the previous collection's name, moves the alias, then removes
the old chunks from the graph; ``rollback`` swaps back, ``finalize`` forgets the old records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core import ids
from core.domain import ChunkRecord, Document, DocumentStatus, Version
from core.errors import Conflict, IngestionError, NotFound, UnsupportedMediaType
from core.settings import ChunkingSettings, SparseSettings
from ingestion.indexing import Indexer
from runtime import Runtime
from stores.catalog import migration_state, staging
from stores.graph import VersionGraph
from stores.vectors import VectorStore, collection_name
from textmodels.models import TextModels

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
COPY_PAGE = 256


def target_indexer(
    rt: Runtime,
    *,
    model: str | None = None,
    sparse: SparseSettings | None = None,
    chunking: ChunkingSettings | None = None,
) -> Indexer:
    """The indexer of the new collection: the current one with another model, sparse weights
    or chunk parameters."""
    s = rt.settings
    update: dict[str, Any] = {}
    if model is not None:
        update["embedding"] = s.embedding.model_copy(update={"model": model})
    if sparse is not None:
        update["sparse"] = sparse
    if chunking is not None:
        update["chunking"] = chunking
    settings = s.model_copy(update=update)
    same_model = settings.embedding.model == s.embedding.model
    models = TextModels(
        settings,
        embedder=rt.models.embedder if same_model else None,
        extractor=rt.models.extractor,
    )
    return Indexer(settings, models)


def physical_name(indexer: Indexer, prefix: str, *, rechunk: bool = False) -> str:
    """``<logical>__<config hash>``; the chunker is part of the hash when it changes."""
    models = indexer.models
    config: dict[str, object] = {
        "embedder": models.embedder.model_id,
        "sparse": models.sparse.to_dict(),
        "sentences": models.sentence_vectors,  # a collection made before them lacks them
    }
    if rechunk:
        config["chunker"] = indexer.chunker.to_dict()
    return f"{collection_name(prefix, models.embedder.model_id)}__{ids.fingerprint(config)[:8]}"


@dataclass
class Target:
    indexer: Indexer
    live: VectorStore  # the logical name (an alias once switched)
    new: VectorStore  # the physical collection being built
    serving: bool  # True when this process serves queries from ``live`` (same model)
    rechunk: bool  # other chunk parameters than this process's: chunk records are staged


def target(rt: Runtime, indexer: Indexer) -> Target:
    prefix = rt.settings.qdrant.collection_prefix
    logical = collection_name(prefix, indexer.models.embedder.model_id)
    serving = logical == rt.vectors.collection
    live = rt.vectors if serving else rt.vectors.sibling(logical)
    rechunk = indexer.chunker_fingerprint != Indexer(rt.settings, rt.models).chunker_fingerprint
    new = rt.vectors.sibling(physical_name(indexer, prefix, rechunk=rechunk))
    return Target(indexer, live, new, serving, rechunk)


def _key(t: Target) -> str:
    return f"vectors.reembed:{t.new.collection}"


def build(
    rt: Runtime,
    indexer: Indexer,
    *,
    batch_size: int | None = None,
    restart: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fill the new collection from the catalog's chunk records (re-chunked and staged first
    when the chunk parameters change), resumably (one checkpoint per batch of documents).
    Queries keep using the live collection meanwhile."""
    t = target(rt, indexer)
    if t.live.alias_target() == t.new.collection:
        raise Conflict(f"{t.new.collection} already serves {t.live.collection}: nothing to build")
    size = batch_size or rt.settings.migrate.batch_size
    key = _key(t)
    state = None if restart else migration_state.get_state(rt.catalog, key)
    docs = rt.catalog.documents.all_live()
    summary: dict[str, Any] = {
        "alias": t.live.collection,
        "from": t.live.alias_target() or t.live.collection,
        "to": t.new.collection,
        "model": indexer.models.embedder.model_id,
        "documents": len(docs),
        "chunks": rt.catalog.chunks.count(),
    }
    if t.rechunk:
        active = staging.active_versions(rt.catalog).values()
        summary["chunker"] = indexer.chunker.to_dict()
        summary["versions_to_rechunk"] = sum(not _chunked_by(t, v) for v in active)
    if dry_run:
        return summary
    if state is None:
        if restart:
            staging.drop(rt.catalog, t.new.collection)
        state = {"after": None, "documents": 0, "started_at": datetime.now(UTC).isoformat()}
        migration_state.put_state(rt.catalog, key, state)
    t.new.ensure_collection(indexer.models.embedder.dim)
    after: str | None = state["after"]
    done = int(state["documents"])
    if progress:
        progress(done, len(docs))
    # Paged by the database (its collation orders ids, as the checkpoint compares them).
    while batch := rt.catalog.documents.live(after, size):
        for d in batch:
            _build_document(rt, t, d.tenant_id, d.document_id)
        done += len(batch)
        after = batch[-1].document_id
        state = {**state, "after": after, "documents": done}
        migration_state.put_state(rt.catalog, key, state)
        if progress:
            progress(done, max(done, len(docs)))
    migration_state.put_state(rt.catalog, key, {**state, "complete": True})
    return summary | {"built": done}


def _chunked_by(t: Target, v: staging.ActiveVersion) -> bool:
    """Whether the version's chunk records already are the target chunker's (their ids say it:
    the ids of ``n`` chunks of this content by this chunker are known without parsing)."""
    fp = t.indexer.chunker_fingerprint
    n = len(v.chunk_ids)
    return v.chunk_ids == {ids.chunk_id(v.document_id, v.sha256, fp, i) for i in range(n)}


def _build_document(rt: Runtime, t: Target, tenant_id: str, document_id: str) -> int:
    """Embed the document's chunk records (every version that has some) into the new
    collection; with new chunk parameters, its active version is re-chunked and staged first."""
    doc = _document(rt, tenant_id, document_id)
    if doc is None:  # deleted meanwhile: the catch-up removes its points
        return 0
    if t.rechunk:
        version = next((v for v in doc.versions if v.number == doc.active_version), None)
        chunks = rt.catalog.chunks.of_version(version.id) if version is not None else []
        if version is not None and chunks:
            active = staging.ActiveVersion(
                version.id, tenant_id, document_id, version.sha256, frozenset(c.id for c in chunks)
            )
            if not _chunked_by(t, active):
                _stage(rt, t, doc, version, chunks)
    return _embed_versions(rt, t, doc, None)


def _quiet(_stage: str, _fraction: float) -> None:
    """No progress to report per document (the migration reports per batch)."""


def _stage(
    rt: Runtime, t: Target, doc: Document, version: Version, current: list[ChunkRecord]
) -> list[ChunkRecord]:
    """Chunk the version's original again with the target chunker, stage the records for the
    new collection and add their chunks to the graph. An original that no longer parses keeps
    its chunk records (staged as they are: the switch changes nothing for it)."""
    try:
        data = rt.blobs.read(doc.tenant_id, version.sha256)
        chunks = t.indexer.prepare(data, version, doc.tenant_id, _quiet)
    except (IngestionError, UnsupportedMediaType, NotFound) as exc:
        log.warning(
            "re-chunking failed: the version keeps its chunks",
            extra={"document_id": doc.id, "version_id": version.id, "cause": exc.detail},
        )
        chunks = []
    chunks = chunks or current
    if not staging.stage(rt.catalog, t.new.collection, version.id, chunks):
        return chunks  # purged meanwhile: the catch-up removes its points
    rt.graph.add_chunks(t.indexer.version_graph(chunks, doc, version))
    try:
        now = rt.catalog.documents.get(doc.tenant_id, doc.id)
        superseded = now.status == DocumentStatus.DELETING or now.active_version != version.number
    except NotFound:
        superseded = True
    if superseded:  # deleted or superseded while re-chunked: its removal may have gone first
        rt.graph.delete_version(doc.tenant_id, doc.id, version.id)
    return chunks


def _records(rt: Runtime, collection: str, version_id: str) -> list[ChunkRecord]:
    """The chunk records a collection is built from: staged for it, else the catalog's."""
    return staging.staged_chunks(
        rt.catalog, collection, version_id
    ) or rt.catalog.chunks.of_version(version_id)


def _embed_document(
    rt: Runtime, t: Target, tenant_id: str, document_id: str, only: set[str] | None
) -> int:
    doc = _document(rt, tenant_id, document_id)
    if doc is None:  # deleted meanwhile: the catch-up removes its points
        return 0
    return _embed_versions(rt, t, doc, only)


def _embed_versions(rt: Runtime, t: Target, doc: Document, only: set[str] | None) -> int:
    """Embed the document's records (staged or the catalog's, every version that has some)
    into the new collection; ``only``: just these chunk ids."""
    n = 0
    for version in doc.versions:
        records = _records(rt, t.new.collection, version.id)
        chunks = [c for c in records if only is None or c.id in only]
        if chunks:
            t.new.upsert(t.indexer.vector_points(chunks, doc, version, _quiet))
            n += len(chunks)
    return n


def _document(rt: Runtime, tenant_id: str, document_id: str) -> Document | None:
    try:
        return rt.catalog.documents.get(tenant_id, document_id)
    except NotFound:
        return None


def _version(
    rt: Runtime, tenant_id: str, document_id: str, version_id: str
) -> tuple[Document, Version] | None:
    """The document and this version of it, unless either is gone."""
    doc = _document(rt, tenant_id, document_id)
    version = next((v for v in doc.versions if v.id == version_id), None) if doc else None
    return (doc, version) if doc is not None and version is not None else None


def _restage(rt: Runtime, t: Target) -> dict[str, int]:
    """Re-chunking: stage every active version whose records are not the target chunker's yet
    (added or re-versioned since the build began), forget what was staged for the others."""
    active = staging.active_versions(rt.catalog)
    staged = staging.staged_versions(rt.catalog, t.new.collection)
    needed = {vid for vid, v in active.items() if not _chunked_by(t, v)}
    stale = sorted(staged.keys() - needed)
    staging.drop(rt.catalog, t.new.collection, stale)
    n = 0
    for vid in sorted(needed - staged.keys()):
        v = active[vid]
        if found := _version(rt, v.tenant_id, v.document_id, vid):
            _stage(rt, t, *found, rt.catalog.chunks.of_version(vid))
            n += 1
    return {"rechunked": n, "unstaged": len(stale)}


def catch_up(rt: Runtime, t: Target, since: datetime | None) -> dict[str, int]:
    """Make the new collection hold exactly the records it is built from (staged ones first
    brought up to date): embed the missing, drop the extra, refresh the payload of documents
    edited since the build began."""
    out = _restage(rt, t) if t.rechunk else {}
    expected = staging.expected_points(rt.catalog, t.new.collection)
    edited = rt.catalog.documents.edited_since(since) if since is not None else []
    held = all_point_versions(t.new)
    missing: dict[tuple[str, str], set[str]] = {}
    for cid, (tenant, doc, ver) in expected.items():
        if held.get(cid) != ver:
            missing.setdefault((tenant, doc), set()).add(cid)
    extra = [pid for pid in held if pid not in expected]
    embedded = sum(_embed_document(rt, t, tn, d, only) for (tn, d), only in missing.items())
    t.new.delete_ids(extra)
    for tenant, doc in edited:
        try:
            d = rt.catalog.documents.get(tenant, doc)
        except NotFound:
            continue
        t.new.set_payload(tenant, doc, {"title": d.title, "tags": d.tags, "metadata": d.metadata})
    return out | {"embedded": embedded, "removed": len(extra), "payloads": len(edited)}


def switch(rt: Runtime, indexer: Indexer, *, dry_run: bool = False) -> dict[str, Any]:
    """Catch up, then (re-chunking: swap the chunk records in the catalog and) point the alias
    at the new collection in one step; re-chunking: then drop the old chunks from the graph."""
    t = target(rt, indexer)
    state = migration_state.get_state(rt.catalog, _key(t))
    if not (state and state.get("complete")):
        raise Conflict(
            f"{t.new.collection} is not built: run `gedrag migrate reembed` with these options"
        )
    previous = t.live.alias_target()
    summary: dict[str, Any] = {"alias": t.live.collection, "from": previous, "to": t.new.collection}
    recorded = migration_state.get_state(rt.catalog, f"vectors.alias:{t.live.collection}") or {}
    if previous == t.new.collection:  # switched already: a rerun after a crash ends the work
        left = recorded.get("previous")
        return summary | {"already_switched": True, "graph": _settle_graph(rt, left)}
    legacy = previous is None and t.live.dim() is not None
    if dry_run:
        staged = staging.staged_versions(rt.catalog, t.new.collection) if t.rechunk else {}
        return summary | {"legacy_copy": legacy, "rechunked_versions": len(staged)}
    unreachable = recorded.get("previous")  # by a rollback until now; by none after the switch
    since = datetime.fromisoformat(state["started_at"])
    first = catch_up(rt, t, since)  # the bulk, while queries and writes go on
    with t.live.exclusive():  # local mode: no reader or writer of this process in between
        last = catch_up(rt, t, since)
        if legacy:
            previous = f"{t.live.collection}__legacy"
            copy_collection(t.live, t.live.sibling(previous))
            t.live.drop_collection(t.live.collection)
        # Queries read no chunk record (payloads carry the text): the records may change first.
        swapped = staging.swap(rt.catalog, take=t.new.collection, keep=previous)
        t.live.point_alias(t.new.collection)
    migration_state.put_state(
        rt.catalog,
        f"vectors.alias:{t.live.collection}",
        {"current": t.new.collection, "previous": previous},
    )
    new_model, old_model = indexer.settings.embedding.model, rt.settings.embedding.model
    if new_model != old_model:
        # Processes that leave the model to the installation take the new one when they
        # restart (runtime.serving_model); until then each serves its own model's collection.
        migration_state.put_state(
            rt.catalog,
            migration_state.EMBEDDING_MODEL,
            {"model": new_model, "previous": old_model},
        )
        summary["model"] = {"from": old_model, "to": new_model}
    if unreachable and unreachable not in (previous, t.new.collection):
        staging.drop(rt.catalog, unreachable)
    return summary | {
        "from": previous,
        "catch_up": first,
        "final_catch_up": last,
        "rechunked_versions": len(swapped),
        "graph": _settle_graph(rt, previous),
    }


def _settle_graph(rt: Runtime, left: str | None) -> int:
    """After a swap of chunk records: the graph holds exactly the catalog's chunks of every
    swapped version (the ones whose former records are staged for the collection ``left``)."""
    if left is None:
        return 0
    n = 0
    for vid, (tenant, document_id) in staging.staged_versions(rt.catalog, left).items():
        found = _version(rt, tenant, document_id, vid)
        chunks = rt.catalog.chunks.of_version(vid)
        if found and chunks:
            _graph_to(rt, *found, chunks)
            n += 1
    return n


def _graph_to(rt: Runtime, doc: Document, version: Version, chunks: Sequence[ChunkRecord]) -> None:
    """Make the graph hold exactly these chunks for the version: the ones it holds are kept
    as they are, the others extracted (after a rollback, the records swapped back)."""
    held = next(
        (v for v in rt.graph.export_document(doc.tenant_id, doc.id) if v.version_id == version.id),
        None,
    )
    have = {c.id: c for c in held.chunks} if held else {}
    fresh = Indexer(rt.settings, rt.models).version_graph(
        [c for c in chunks if c.id not in have], doc, version
    )
    made = {c.id: c for c in fresh.chunks}
    entities = {e.key: e for e in (held.entities if held else ())} | {
        e.key: e for e in fresh.entities
    }
    kept = [have.get(c.id) or made[c.id] for c in chunks]
    used = sorted({k for c in kept for k in c.entity_keys} & entities.keys())
    graph = VersionGraph(
        tenant_id=doc.tenant_id,
        document_id=doc.id,
        version_id=version.id,
        title=doc.title,
        chunks=kept,
        entities=[entities[k] for k in used],
    )
    rt.graph.upsert_version(graph)
    rt.catalog.versions.set_entity_count(version.id, len(graph.entities))


def _alias_state(rt: Runtime, alias: str) -> dict[str, Any]:
    state = migration_state.get_state(rt.catalog, f"vectors.alias:{alias}")
    if not state:
        raise Conflict(f"no switch of {alias} recorded")
    return state


def rollback(rt: Runtime, *, dry_run: bool = False) -> dict[str, Any]:
    """Point the serving alias back at the collection it pointed to before the last switch
    (after a re-chunking: with the chunk records and graph chunks it was built from)."""
    live = rt.vectors
    state = _alias_state(rt, live.collection)
    previous = state.get("previous")
    if not previous:
        raise Conflict(f"the previous collection of {live.collection} was finalized")
    current = str(state["current"])
    if dry_run:
        staged = len(staging.staged_versions(rt.catalog, previous))
        return {"alias": live.collection, "to": previous, "rechunked_versions": staged}
    with live.exclusive():
        swapped = staging.swap(rt.catalog, take=previous, keep=current)
        live.point_alias(previous)
    migration_state.put_state(
        rt.catalog,
        f"vectors.alias:{live.collection}",
        {"current": previous, "previous": current},
    )
    graph = _settle_graph(rt, current)
    return {
        "alias": live.collection,
        "to": previous,
        "rechunked_versions": len(swapped),
        "graph": graph,
    }


def finalize(rt: Runtime, *, dry_run: bool = False) -> dict[str, Any]:
    """Drop the collection the alias pointed to before the last switch, and the chunk records
    staged for it."""
    live = rt.vectors
    state = _alias_state(rt, live.collection)
    previous = state.get("previous")
    if previous and not dry_run:
        live.drop_collection(previous)
        staging.drop(rt.catalog, previous)
        migration_state.put_state(
            rt.catalog, f"vectors.alias:{live.collection}", {**state, "previous": None}
        )
    return {"alias": live.collection, "dropped": previous}


def all_point_versions(store: VectorStore) -> dict[str, str]:
    """``point id → version_id`` of every point of the store (one scan)."""
    return {pid: v for points in store.point_index().values() for pid, v in points.items()}


def copy_collection(src: VectorStore, dst: VectorStore, *, progress: Progress | None = None) -> int:
    """Copy every point (vectors and payload) into ``dst``, created like ``src`` if needed."""
    dim = src.dim()
    if dim is None:
        return 0
    dst.ensure_collection(dim)
    n, offset = 0, None
    while True:
        points, offset = src.scroll_points(offset, COPY_PAGE)
        dst.upsert(points)
        n += len(points)
        if progress:
            progress(n, None)
        if offset is None:
            return n
