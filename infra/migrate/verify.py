"""Drift between the catalog, Qdrant and the graph store(s), per document, and its repair.

For each live document the catalog says which chunk ids its active version has (the chunk
records) and, with the rule-based extractor, which mentions they make (recomputed: the rules are
deterministic and fast). Each store is then read for the same document: Qdrant's point ids with
their ``version_id``, each graph store's chunks with their version and mentions. A store drifts
when its count or the checksum (sha256 of the sorted ``id:version`` / ``chunk→entity`` lines)
differs. Documents a store holds that the catalog does not (a lost delete) drift too. Documents
with a job still queued or running are skipped: their stores legitimately differ meanwhile, and
so may the graph, which holds the chunks of a re-chunking build beside the records' until its
switch (:mod:`infra.migrate.vectors`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.domain import DocumentStatus
from core.errors import NotFound
from infra.migrate.purged import purged_traces
from ingestion.indexing import Indexer
from runtime import Runtime
from stores.catalog import migration_state, staging
from stores.graph import GraphStore, VersionGraph
from stores.graph.dual import DualGraphStore

Progress = Callable[[int, int | None], None]


def checksum(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in sorted(lines):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Side:
    """What one store holds for a document: a count and a checksum."""

    count: int
    checksum: str

    @staticmethod
    def of(lines: set[str]) -> Side:
        return Side(len(lines), checksum(lines))


@dataclass
class DocumentDrift:
    tenant_id: str
    document_id: str
    problems: list[str] = field(default_factory=list)
    stores: set[str] = field(default_factory=set)  # "vectors", "graph:primary", ...
    orphan: bool = False  # no longer in the catalog

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "document_id": self.document_id,
            "stores": sorted(self.stores),
            "problems": self.problems,
            "orphan": self.orphan,
        }


@dataclass
class VerifyReport:
    documents: int
    skipped_busy: list[str]
    drift: list[DocumentDrift]

    @property
    def ok(self) -> bool:
        return not self.drift

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "skipped_busy": self.skipped_busy,
            "drifted": len(self.drift),
            "drift": [d.to_dict() for d in self.drift],
        }


def graph_stores(rt: Runtime) -> dict[str, GraphStore]:
    graph = rt.graph
    if isinstance(graph, DualGraphStore):
        return {"graph:primary": graph.primary, "graph:secondary": graph.secondary}
    return {"graph": graph}


def _graph_sides(
    versions: list[VersionGraph],
    ahead: set[str] | frozenset[str] = frozenset(),
    records: set[str] | frozenset[str] = frozenset(),
) -> tuple[set[str], set[str]]:
    """Chunk (``id:version``) and mention lines, leaving out the ``ahead`` chunk lines that are
    not chunk records."""
    held = [(f"{c.id}:{v.version_id}", c) for v in versions for c in v.chunks]
    held = [(line, c) for line, c in held if line in records or line not in ahead]
    return {line for line, _ in held}, {f"{c.id}>{k}" for _, c in held for k in set(c.entity_keys)}


def rechunking_ahead(rt: Runtime) -> set[str]:
    """``id:version`` of the chunks re-chunking builds added to the graph ahead of their switch
    (staged for a collection no alias has left): the graph may hold them, they are no drift."""
    left = {
        str(state["previous"])
        for state in migration_state.states(rt.catalog, "vectors.alias:").values()
        if state.get("previous")
    }
    return {f"{cid}:{vid}" for vid, cids in staging.ahead(rt.catalog, left).items() for cid in cids}


def expected_graph(rt: Runtime, tenant_id: str, document_id: str) -> VersionGraph | None:
    """The active version's graph as ingestion would write it, from the catalog's chunks."""
    try:
        doc = rt.catalog.documents.get(tenant_id, document_id)
    except NotFound:
        return None
    version = next((v for v in doc.versions if v.number == doc.active_version), None)
    if version is None:
        return None
    indexer = Indexer(rt.settings, rt.models)
    return indexer.version_graph(rt.catalog.chunks.of_version(version.id), doc, version)


def verify(rt: Runtime, *, progress: Progress | None = None) -> VerifyReport:
    docs = rt.catalog.documents.all_live()
    graphs = graph_stores(rt)
    recompute = rt.settings.entities.extractor == "rules"
    chunks_by_doc = rt.catalog.chunks.ids_by_document([d.document_id for d in docs])
    ahead = rechunking_ahead(rt)
    points = rt.vectors.point_index()
    drift: list[DocumentDrift] = []
    busy: list[str] = []
    for i, d in enumerate(docs):
        if progress:
            progress(i, len(docs))
        if d.busy:
            busy.append(d.document_id)
            continue
        report = DocumentDrift(d.tenant_id, d.document_id)
        expected = {
            f"{cid}:{ver}"
            for cid, ver in chunks_by_doc[d.document_id].items()
            if ver == d.active_version_id
        }
        want = Side.of(expected)
        records = {f"{cid}:{ver}" for cid, ver in chunks_by_doc[d.document_id].items()}
        stray = len(chunks_by_doc[d.document_id]) - len(expected)
        if stray:
            report.problems.append(f"catalog: {stray} chunk records of inactive versions")
            report.stores.add("catalog")
        vectors = points.get((d.tenant_id, d.document_id), {})
        held = {f"{pid}:{ver}" for pid, ver in vectors.items()}
        got = Side.of(held)
        if got != want:
            report.problems.append(_describe("vectors", want, got, expected, held))
            report.stores.add("vectors")
        elif d.embedding_pending:
            report.problems.append(
                f"vectors: {want.count} chunks searchable by their terms only, never embedded "
                "(the embedding step failed or was interrupted)"
            )
            report.stores.add("vectors")
        want_mentions: Side | None = None
        if recompute:
            g = expected_graph(rt, d.tenant_id, d.document_id)
            want_mentions = Side.of(_graph_sides([g])[1] if g else set())
        mention_sides: dict[str, Side] = {}
        for name, store in graphs.items():
            chunks, mentions = _graph_sides(
                store.export_document(d.tenant_id, d.document_id), ahead, records
            )
            got_chunks = Side.of(chunks)
            if got_chunks != want:
                report.problems.append(_describe(name, want, got_chunks, expected, chunks))
                report.stores.add(name)
            mention_sides[name] = Side.of(mentions)
            if want_mentions is not None and mention_sides[name] != want_mentions:
                report.problems.append(
                    f"{name}: mentions {mention_sides[name].count}, "
                    f"expected {want_mentions.count} (checksum "
                    f"{mention_sides[name].checksum} != {want_mentions.checksum})"
                )
                report.stores.add(name)
        if want_mentions is None and len(set(mention_sides.values())) > 1:
            report.problems.append(f"graph stores disagree on mentions: {mention_sides}")
            report.stores.update(mention_sides)
        if report.problems:
            drift.append(report)
    drift.extend(_orphans(rt, graphs, points))
    drift.extend(purged_traces(rt, graphs, drift))
    if progress:
        progress(len(docs), len(docs))
    return VerifyReport(len(docs), busy, drift)


def _describe(name: str, want: Side, got: Side, expected: set[str], held: set[str]) -> str:
    """``expected`` and ``held`` are ``chunk_id:version_id`` lines."""
    missing = len({e.split(":")[0] for e in expected} - {h.split(":")[0] for h in held})
    unexpected = len(held - expected)
    return (
        f"{name}: {got.count} chunks, expected {want.count} ({missing} missing, "
        f"{unexpected} unexpected or of another version; checksum {got.checksum} != "
        f"{want.checksum})"
    )


def _orphans(
    rt: Runtime, graphs: dict[str, GraphStore], points: dict[tuple[str, str], dict[str, str]]
) -> list[DocumentDrift]:
    """Documents held by a store but gone from the catalog (deleting ones are not orphans)."""
    known = rt.catalog.documents.all_ids()
    found: dict[tuple[str, str], set[str]] = {}
    for tenant_id, document_id in points:
        if document_id not in known:
            found.setdefault((tenant_id, document_id), set()).add("vectors")
    for name, store in graphs.items():
        after = None
        while batch := store.documents(after, 1000):
            for document_id, tenant_id in batch:
                if document_id not in known and store.export_document(tenant_id, document_id):
                    found.setdefault((tenant_id, document_id), set()).add(name)
            after = batch[-1][0]
    return [
        DocumentDrift(
            t, d, [f"{', '.join(sorted(s))}: holds a document the catalog has not"], s, True
        )
        for (t, d), s in sorted(found.items())
    ]


@dataclass
class RepairResult:
    repaired: list[str]
    stores: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {"repaired": self.repaired, "stores": self.stores}


def repair(
    rt: Runtime, report: VerifyReport, *, dry_run: bool = False, progress: Progress | None = None
) -> RepairResult:
    """Re-index exactly the drifted documents, in exactly the stores that drifted."""
    graphs = graph_stores(rt)
    done: dict[str, list[str]] = {}
    for i, d in enumerate(report.drift):
        if progress:
            progress(i, len(report.drift))
        done[d.document_id] = sorted(d.stores)
        if dry_run:
            continue
        if d.orphan:
            if "vectors" in d.stores:
                rt.vectors.delete(d.tenant_id, d.document_id)
            for name in d.stores & graphs.keys():
                graphs[name].delete_document(d.tenant_id, d.document_id)
            continue
        _reindex(rt, d, graphs)
    if progress:
        progress(len(report.drift), len(report.drift))
    return RepairResult(sorted(done), done)


def _reindex(rt: Runtime, d: DocumentDrift, graphs: dict[str, GraphStore]) -> None:
    doc = rt.catalog.documents.get(d.tenant_id, d.document_id)
    version = next((v for v in doc.versions if v.number == doc.active_version), None)
    if version is None:  # nothing readers may see: leftovers of failed versions go
        if "vectors" in d.stores:
            rt.vectors.delete(d.tenant_id, d.document_id)
        for name in d.stores & graphs.keys():
            graphs[name].delete_document(d.tenant_id, d.document_id)
        return
    chunks = rt.catalog.chunks.of_version(version.id)
    indexer = Indexer(rt.settings, rt.models)
    if "catalog" in d.stores:  # leftovers of versions no job is working on any more
        for v in doc.versions:
            if v.id != version.id:
                rt.catalog.chunks.drop(v.id)
    if "vectors" in d.stores:
        points = indexer.vector_points(chunks, doc, version, lambda _s, _f: None)
        rt.vectors.ensure_collection(rt.models.embedder.dim)
        rt.vectors.upsert(points)
        keep = {c.id for c in chunks}
        extra = [p for p in rt.vectors.point_versions(d.tenant_id, d.document_id) if p not in keep]
        rt.vectors.delete_ids(extra)
        if version.status == DocumentStatus.SEARCHABLE:  # embedded now: complete
            rt.catalog.versions.set_status(version.id, DocumentStatus.READY)
    names = d.stores & graphs.keys()
    if names:
        graph = indexer.version_graph(chunks, doc, version)
        for name in sorted(names):
            store = graphs[name]
            for held in store.export_document(d.tenant_id, d.document_id):
                if held.version_id != version.id:
                    store.delete_version(d.tenant_id, d.document_id, held.version_id)
            store.upsert_version(graph)
