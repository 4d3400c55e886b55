"""Re-embedding into a new Qdrant collection while the old one serves, then one alias switch.

Readers and writers address a collection by its logical name, ``<prefix>_<model>``. A rebuild
(another model, other sparse weights) fills a physical collection ``<logical>__<config hash>``
from the catalog's chunk records while queries keep going to the old one; ``switch`` then
catches up what changed meanwhile and points the alias at the new collection in one Qdrant
request (``update_collection_aliases``: atomic). In local mode the process serving queries runs
the switch itself: it holds the store for the short catch-up, swaps its in-memory mirror with the
alias, and no reader ever sees a half-filled collection. The old collection stays until
``finalize`` (``rollback`` points the alias back). A logical name that is still a plain
collection (made before aliases) is first copied to ``<logical>__legacy``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qdrant_client import models
from sqlalchemy import select

from core import ids
from core.domain import DocumentStatus
from core.errors import Conflict, NotFound
from core.settings import SparseSettings
from infra.migrate import catalog_reads
from ingestion.indexing import Indexer
from ingestion.runtime import Runtime
from stores.catalog import migration_state
from stores.catalog.models import ChunkRow, DocumentRow
from stores.vectors import QdrantVectorStore, collection_name

Progress = Callable[[int, int | None], None]
COPY_PAGE = 256


def target_indexer(
    rt: Runtime, *, model: str | None = None, sparse: SparseSettings | None = None
) -> Indexer:
    """The indexer of the new collection: the current one with another model / sparse weights."""
    s = rt.settings
    update: dict[str, Any] = {}
    if model is not None:
        update["embedding"] = s.embedding.model_copy(update={"model": model})
    if sparse is not None:
        update["sparse"] = sparse
    settings = s.model_copy(update=update)
    same_model = settings.embedding.model == s.embedding.model
    return Indexer(
        settings,
        embedder=rt.indexer.embedder if same_model else None,
        extractor=rt.indexer.extractor,
    )


def physical_name(indexer: Indexer, prefix: str) -> str:
    config: dict[str, object] = {
        "embedder": indexer.embedder.model_id,
        "sparse": indexer.sparse.to_dict(),
    }
    return f"{collection_name(prefix, indexer.embedder.model_id)}__{ids.fingerprint(config)[:8]}"


@dataclass
class Target:
    indexer: Indexer
    live: QdrantVectorStore  # the logical name (an alias once switched)
    new: QdrantVectorStore  # the physical collection being built
    serving: bool  # True when this process serves queries from ``live`` (same model)


def target(rt: Runtime, indexer: Indexer) -> Target:
    prefix = rt.settings.qdrant.collection_prefix
    logical = collection_name(prefix, indexer.embedder.model_id)
    serving = logical == rt.vectors.collection
    live = rt.vectors if serving else rt.vectors.sibling(logical)
    return Target(indexer, live, rt.vectors.sibling(physical_name(indexer, prefix)), serving)


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
    """Fill the new collection from the catalog's chunk records, resumably (one checkpoint per
    batch of documents). Queries keep using the live collection meanwhile."""
    t = target(rt, indexer)
    if t.live.alias_target() == t.new.collection:
        raise Conflict(f"{t.new.collection} already serves {t.live.collection}: nothing to build")
    size = batch_size or rt.settings.migrate.batch_size
    key = _key(t)
    state = None if restart else migration_state.get_state(rt.catalog, key)
    docs = catalog_reads.all_live_documents(rt.catalog)
    summary: dict[str, Any] = {
        "alias": t.live.collection,
        "from": t.live.alias_target() or t.live.collection,
        "to": t.new.collection,
        "model": indexer.embedder.model_id,
        "documents": len(docs),
        "chunks": catalog_reads.chunk_count(rt.catalog),
    }
    if dry_run:
        return summary
    if state is None:
        state = {"after": None, "documents": 0, "started_at": datetime.now(UTC).isoformat()}
        migration_state.put_state(rt.catalog, key, state)
    t.new.ensure_collection(indexer.embedder.dim)
    after: str | None = state["after"]
    done = int(state["documents"])
    if progress:
        progress(done, len(docs))
    # Paged by the database (its collation orders ids, as the checkpoint compares them).
    while batch := catalog_reads.live_documents(rt.catalog, after, size):
        for d in batch:
            _embed_document(rt, t, d.tenant_id, d.document_id, None)
        done += len(batch)
        after = batch[-1].document_id
        state = {**state, "after": after, "documents": done}
        migration_state.put_state(rt.catalog, key, state)
        if progress:
            progress(done, max(done, len(docs)))
    migration_state.put_state(rt.catalog, key, {**state, "complete": True})
    return summary | {"built": done}


def _embed_document(
    rt: Runtime, t: Target, tenant_id: str, document_id: str, only: set[str] | None
) -> int:
    """Embed the document's chunk records (every version that has some) into the new
    collection; ``only``: just these chunk ids."""
    try:
        doc = rt.catalog.get_document(tenant_id, document_id)
    except NotFound:  # deleted meanwhile: the catch-up removes its points
        return 0
    n = 0
    for version in doc.versions:
        chunks = [c for c in rt.catalog.version_chunks(version.id) if only is None or c.id in only]
        if chunks:
            t.new.upsert(t.indexer.vector_points(chunks, doc, version, lambda _s, _f: None))
            n += len(chunks)
    return n


def catch_up(rt: Runtime, t: Target, since: datetime | None) -> dict[str, int]:
    """Make the new collection hold exactly the catalog's chunk records: embed the missing,
    drop the extra, refresh the payload of documents edited since the build began."""
    with rt.catalog.session() as s:
        expected = {
            cid: (tenant, doc, ver)
            for cid, tenant, doc, ver in s.execute(
                select(ChunkRow.id, ChunkRow.tenant_id, ChunkRow.document_id, ChunkRow.version_id)
                .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                .where(DocumentRow.status != DocumentStatus.DELETING)
            )
        }
        edited = (
            list(
                s.execute(
                    select(DocumentRow.tenant_id, DocumentRow.id).where(
                        DocumentRow.updated_at >= since
                    )
                )
            )
            if since is not None
            else []
        )
    held = t.new.all_point_versions()
    missing: dict[tuple[str, str], set[str]] = {}
    for cid, (tenant, doc, ver) in expected.items():
        if held.get(cid) != ver:
            missing.setdefault((tenant, doc), set()).add(cid)
    extra = [pid for pid in held if pid not in expected]
    embedded = sum(_embed_document(rt, t, tn, d, only) for (tn, d), only in missing.items())
    t.new.delete_ids(extra)
    for tenant, doc in edited:
        try:
            d = rt.catalog.get_document(tenant, doc)
        except NotFound:
            continue
        t.new.set_payload(tenant, doc, {"title": d.title, "tags": d.tags, "metadata": d.metadata})
    return {"embedded": embedded, "removed": len(extra), "payloads": len(edited)}


def switch(rt: Runtime, indexer: Indexer, *, dry_run: bool = False) -> dict[str, Any]:
    """Catch up, then point the alias at the new collection in one step."""
    t = target(rt, indexer)
    state = migration_state.get_state(rt.catalog, _key(t))
    if not (state and state.get("complete")):
        raise Conflict(f"{t.new.collection} is not built: run `gedrag migrate reembed build`")
    previous = t.live.alias_target()
    legacy = previous is None and t.live.dim() is not None
    summary: dict[str, Any] = {"alias": t.live.collection, "from": previous, "to": t.new.collection}
    if dry_run:
        return summary | {"legacy_copy": legacy}
    since = datetime.fromisoformat(state["started_at"])
    first = catch_up(rt, t, since)  # the bulk, while queries and writes go on
    with t.live.exclusive():  # local mode: no reader or writer of this process in between
        last = catch_up(rt, t, since)
        if legacy:
            previous = f"{t.live.collection}__legacy"
            copy_collection(t.live, t.live.sibling(previous))
            with t.live._call("delete legacy collection"):
                t.live.client.delete_collection(t.live.collection)
        mirror = t.new.build_mirror() if t.serving else None
        ops: list[Any] = []
        if previous is not None and not legacy:
            ops.append(
                models.DeleteAliasOperation(
                    delete_alias=models.DeleteAlias(alias_name=t.live.collection)
                )
            )
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(
                    collection_name=t.new.collection, alias_name=t.live.collection
                )
            )
        )
        with t.live._call("switch alias"):
            t.live.client.update_collection_aliases(change_aliases_operations=ops)
        if t.serving:
            t.live.use_mirror(mirror)
    migration_state.put_state(
        rt.catalog,
        f"vectors.alias:{t.live.collection}",
        {"current": t.new.collection, "previous": previous},
    )
    return summary | {"from": previous, "catch_up": first, "final_catch_up": last}


def _alias_state(rt: Runtime, alias: str) -> dict[str, Any]:
    state = migration_state.get_state(rt.catalog, f"vectors.alias:{alias}")
    if not state:
        raise Conflict(f"no switch of {alias} recorded")
    return state


def rollback(rt: Runtime, *, dry_run: bool = False) -> dict[str, Any]:
    """Point the serving alias back at the collection it pointed to before the last switch."""
    live = rt.vectors
    state = _alias_state(rt, live.collection)
    previous = state.get("previous")
    if not previous:
        raise Conflict(f"the previous collection of {live.collection} was finalized")
    if dry_run:
        return {"alias": live.collection, "to": previous}
    old = live.sibling(previous)
    with live.exclusive():
        mirror = old.build_mirror()
        with live._call("switch alias"):
            live.client.update_collection_aliases(
                change_aliases_operations=[
                    models.DeleteAliasOperation(
                        delete_alias=models.DeleteAlias(alias_name=live.collection)
                    ),
                    models.CreateAliasOperation(
                        create_alias=models.CreateAlias(
                            collection_name=previous, alias_name=live.collection
                        )
                    ),
                ]
            )
        live.use_mirror(mirror)
    migration_state.put_state(
        rt.catalog,
        f"vectors.alias:{live.collection}",
        {"current": previous, "previous": state["current"]},
    )
    return {"alias": live.collection, "to": previous}


def finalize(rt: Runtime, *, dry_run: bool = False) -> dict[str, Any]:
    """Drop the collection the alias pointed to before the last switch."""
    live = rt.vectors
    state = _alias_state(rt, live.collection)
    previous = state.get("previous")
    if previous and not dry_run:
        with live._call("delete collection"):
            live.client.delete_collection(previous)
        migration_state.put_state(
            rt.catalog, f"vectors.alias:{live.collection}", {**state, "previous": None}
        )
    return {"alias": live.collection, "dropped": previous}


def copy_collection(
    src: QdrantVectorStore, dst: QdrantVectorStore, *, progress: Progress | None = None
) -> int:
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
