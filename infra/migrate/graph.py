"""Graph store migration: dual write, resumable backfill, cutover, rollback, finalize.

The settings name a primary and a secondary graph store (``GEDRAG_GRAPH__SECONDARY``); with both
set, every ingestion and deletion writes to both (:class:`stores.graph.dual.DualGraphStore`).
``backfill`` copies what the primary held before dual write began, in batches of documents
ordered by id, checkpointing the last id after each batch: a killed backfill resumes there and,
every write being an upsert by deterministic id, redoing a batch adds nothing. ``cutover``
records in the catalog that the secondary serves reads (every process follows within
``GEDRAG_GRAPH__ROLE_CHECK_S``); dual write goes on, so ``rollback`` loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigurationError, Conflict
from core.settings import Settings
from runtime import Runtime
from stores.catalog import migration_state
from stores.graph import GraphStore, VersionGraph
from stores.graph.dual import DualGraphStore

Progress = Callable[[int, int | None], None]  # (done, total or None)

# A document changed by concurrent writes while it was copied is re-read this many times; the
# dual write carries the change anyway, and `verify` reports what is left.
COPY_ATTEMPTS = 3


def describe(settings: Settings, which: str) -> str:
    """A stable, password-free name of a configured graph store (checkpoint keys, logs)."""
    g = settings.graph
    backend = g.backend if which == "primary" else g.secondary
    if backend == "neo4j":
        return f"neo4j:{settings.neo4j.uri}/{settings.neo4j.database}"
    url = settings.graph_url if which == "primary" else settings.graph_secondary_url
    return f"relational:{_mask(url)}"


def _mask(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def dual_store(rt: Runtime) -> DualGraphStore:
    graph = rt.graph
    if not isinstance(graph, DualGraphStore):
        raise ConfigurationError(
            "no secondary graph store: set GEDRAG_GRAPH__SECONDARY (and "
            "GEDRAG_GRAPH__SECONDARY_URL for a relational one in another database) to dual-write"
        )
    return graph


def checkpoint_key(settings: Settings) -> str:
    return f"graph.backfill:{describe(settings, 'primary')}->{describe(settings, 'secondary')}"


def copy_document(src: GraphStore, dst: GraphStore, tenant_id: str, document_id: str) -> int:
    """Make ``dst`` hold exactly what ``src`` holds for the document; returns its chunks.

    Re-reads the source afterwards: a version ingested or deleted meanwhile (dual write wrote
    it to both) is copied again, so an old read never overwrites a newer state."""
    versions: list[VersionGraph] = []
    for _ in range(COPY_ATTEMPTS):
        versions = src.export_document(tenant_id, document_id)
        held = {v.version_id for v in dst.export_document(tenant_id, document_id)}
        for v in versions:
            dst.upsert_version(v)
        for stale in sorted(held - {v.version_id for v in versions}):
            dst.delete_version(tenant_id, document_id, stale)
        if not versions:
            dst.delete_document(tenant_id, document_id)
        if src.export_document(tenant_id, document_id) == versions:
            break
    return sum(len(v.chunks) for v in versions)


def count_documents(store: GraphStore, page: int = 1000) -> int:
    n, after = 0, None
    while batch := store.documents(after, page):
        n += len(batch)
        after = batch[-1][0]
    return n


@dataclass
class BackfillResult:
    documents: int
    chunks: int
    batches: int
    resumed_after: str | None
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def backfill(
    rt: Runtime,
    *,
    batch_size: int | None = None,
    restart: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> BackfillResult:
    """Copy every document of the primary graph store into the secondary, resumably."""
    dual = dual_store(rt)
    key = checkpoint_key(rt.settings)
    size = batch_size or rt.settings.migrate.batch_size
    state = None if restart else migration_state.get_state(rt.catalog, key)
    after: str | None = state.get("after") if state else None
    done_docs = int(state.get("documents", 0)) if state else 0
    done_chunks = int(state.get("chunks", 0)) if state else 0
    total = count_documents(dual.primary)
    if dry_run:
        left = total - done_docs if after else total
        return BackfillResult(left, 0, 0, after, bool(state and state.get("complete")))
    if restart or state is None:
        migration_state.put_state(rt.catalog, key, {"after": None, "documents": 0, "chunks": 0})
    resumed_after = after
    batches = 0
    if progress:
        progress(done_docs, total)
    while batch := dual.primary.documents(after, size):
        for document_id, tenant_id in batch:
            done_chunks += copy_document(dual.primary, dual.secondary, tenant_id, document_id)
        done_docs += len(batch)
        after = batch[-1][0]
        batches += 1
        # The checkpoint follows the batch: a crash before it redoes the batch (idempotent).
        migration_state.put_state(
            rt.catalog, key, {"after": after, "documents": done_docs, "chunks": done_chunks}
        )
        if progress:
            progress(done_docs, max(total, done_docs))
    migration_state.put_state(
        rt.catalog,
        key,
        {"after": after, "documents": done_docs, "chunks": done_chunks, "complete": True},
    )
    return BackfillResult(done_docs, done_chunks, batches, resumed_after, True)


def graph_drift(rt: Runtime, *, progress: Progress | None = None) -> list[str]:
    """Documents whose content differs between the two graph stores of a dual write."""
    dual = dual_store(rt)
    seen: dict[str, str] = {}
    for store in (dual.primary, dual.secondary):
        after = None
        while batch := store.documents(after, 1000):
            seen.update(dict(batch))
            after = batch[-1][0]
    drifted = []
    for i, (document_id, tenant_id) in enumerate(sorted(seen.items())):
        a = dual.primary.export_document(tenant_id, document_id)
        b = dual.secondary.export_document(tenant_id, document_id)
        if a != b:
            drifted.append(document_id)
        if progress:
            progress(i + 1, len(seen))
    return drifted


def role(rt: Runtime) -> str:
    return "secondary" if migration_state.graph_reads_secondary(rt.catalog) else "primary"


def cutover(rt: Runtime, *, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Make the secondary serve reads, once the backfill finished and the stores agree."""
    dual = dual_store(rt)
    state = migration_state.get_state(rt.catalog, checkpoint_key(rt.settings))
    if not (state and state.get("complete")) and not force:
        raise Conflict("the backfill has not completed: run `gedrag migrate backfill graph`")
    drifted = graph_drift(rt)
    if drifted and not force:
        raise Conflict(
            f"{len(drifted)} documents differ between the graph stores (first: {drifted[0]}); "
            "a document being written differs for a moment: retry, else run "
            "`gedrag migrate backfill graph --restart` or `gedrag migrate repair`"
        )
    summary = {"reads": "secondary", "store": describe(rt.settings, "secondary"), "drift": drifted}
    if not dry_run:
        migration_state.put_state(rt.catalog, migration_state.GRAPH_ROLE, {"reads": "secondary"})
        dual.refresh()
    return summary


def rollback(rt: Runtime, *, dry_run: bool = False) -> dict[str, Any]:
    """Make the primary serve reads again (dual write kept it complete)."""
    dual = dual_store(rt)
    if not dry_run:
        migration_state.put_state(rt.catalog, migration_state.GRAPH_ROLE, {"reads": "primary"})
        dual.refresh()
    return {"reads": "primary", "store": describe(rt.settings, "primary")}


def finalize(rt: Runtime, *, dry_run: bool = False) -> dict[str, Any]:
    """End the migration: forget the read role and say which settings to deploy (the store that
    served reads becomes the only one)."""
    reads = role(rt)
    g = rt.settings.graph
    if reads == "secondary":
        backend, url = g.secondary, g.secondary_url
    else:
        backend, url = g.backend, g.url
    env = {"GEDRAG_GRAPH__BACKEND": backend, "GEDRAG_GRAPH__URL": url or "(unset: the catalog)"}
    env |= {"GEDRAG_GRAPH__SECONDARY": "(unset)", "GEDRAG_GRAPH__SECONDARY_URL": "(unset)"}
    if not dry_run:
        migration_state.delete_state(rt.catalog, migration_state.GRAPH_ROLE)
        migration_state.delete_state(rt.catalog, checkpoint_key(rt.settings))
    return {"kept": describe(rt.settings, reads), "deploy": env}
