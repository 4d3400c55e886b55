"""No trace of a purged document anywhere: what ``gedrag migrate verify`` checks for every
complete deletion certificate.

A purged document must be in no store: no catalog row (document, versions, tags, metadata,
chunk and staged records, trash entry, jobs other than its purge job), no vector point, no
graph chunk or document node (a store holding a document the catalog has not is already an
orphan in :func:`infra.migrate.verify.verify`; here it is named as a purged one), no removed
original on disk unless another version of the tenant holds the same bytes now, no preview
file. The same bytes uploaded again into the same collection after the purge make a new
document with the same id: it is not a trace, so such certificates are skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import NotFound
from core.records import Certificate, CertificateState
from runtime import Runtime
from stores.graph import GraphStore

if TYPE_CHECKING:
    from infra.migrate.verify import DocumentDrift

PREVIEWS = "previews"  # <data dir>/previews/<tenant>/<document id>*, as ingestion.purge reads


def purged_traces(
    rt: Runtime, graphs: dict[str, GraphStore], drift: list[DocumentDrift]
) -> list[DocumentDrift]:
    """Drift entries for traces of purged documents; the orphans already in ``drift`` that
    are purged documents are named so."""
    from infra.migrate.verify import DocumentDrift

    certs = [
        c
        for c in rt.catalog.records.certificates(states=[CertificateState.COMPLETE], limit=10**9)
        if c.kind == "purge"
    ]
    if not certs:
        return []
    by_doc = {c.document_id: c for c in sorted(certs, key=lambda c: c.created_at)}
    existing = {d.document_id: d for d in drift}
    graph_docs: dict[str, set[str]] = {}
    for name, store in graphs.items():
        held: set[str] = set()
        after = None
        while batch := store.documents(after, 1000):
            held.update(d for d, _ in batch if d in by_doc)
            after = batch[-1][0]
        graph_docs[name] = held
    out: list[DocumentDrift] = []
    for doc_id, cert in sorted(by_doc.items()):
        if _reborn(rt, cert):
            continue
        tenant = cert.tenant_id
        problems: list[str] = []
        stores: set[str] = set()
        rows = rt.catalog.records.catalog_counts(doc_id)
        rows["jobs"] -= int(cert.job_id is not None and _job_exists(rt, cert.job_id))
        left = {k: n for k, n in rows.items() if n}
        if left:
            problems.append(f"catalog: rows of a purged document remain {left}")
            stores.add("catalog")
        for name, held in graph_docs.items():
            if doc_id in held:
                problems.append(f"{name}: holds the node of a purged document")
                stores.add(name)
        for original in cert.originals:
            sha = str(original.get("sha256", ""))
            if (
                original.get("removed")
                and rt.blobs.path(tenant, sha).exists()
                and not rt.catalog.records.sha_shared(tenant, sha, "")
            ):
                problems.append(f"blobs: the removed original {sha[:12]}… is still on disk")
                stores.add("blobs")
        previews = rt.settings.data_dir / PREVIEWS / tenant
        if previews.is_dir() and any(previews.glob(f"{doc_id}*")):
            problems.append("previews: files of a purged document remain")
            stores.add("previews")
        named = f"purged document (certificate {cert.id})"
        if doc_id in existing:
            existing[doc_id].problems.append(named)
            existing[doc_id].problems.extend(problems)
            existing[doc_id].stores.update(stores)
        elif problems:
            out.append(DocumentDrift(tenant, doc_id, [named, *problems], stores, orphan=True))
    return out


def _reborn(rt: Runtime, cert: Certificate) -> bool:
    """The purged id names a document uploaded after the purge (the same bytes, the same
    collection): not a trace."""
    try:
        fact = rt.catalog.records.fact(cert.tenant_id, cert.document_id)
    except NotFound:
        return False
    return cert.completed_at is not None and fact.created_at > cert.completed_at


def _job_exists(rt: Runtime, job_id: str) -> bool:
    try:
        rt.catalog.jobs.load(job_id)
    except NotFound:
        return False
    return True
