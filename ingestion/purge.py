"""The purge of one document from every store, with its deletion certificate.

A purge is the step of a delete job (``IngestionService.delete``, run by either executor). Its
state is the certificate row in the catalog, so a purge interrupted anywhere (a store down, the
worker killed) is resumed by running the job again, and completes:

1. ``requested``: nothing removed yet. Holds are checked again (one placed after the request
   wins: the document goes back where it was and the certificate says ``refused``); running
   ingestion of the document is waited for (its late writes would outlive the purge).
2. The counts before are taken in every store and saved with the originals' SHA-256
   (``removing``) *before* anything is removed, so a resumed purge still certifies what was
   there, not what a first attempt left.
3. Removal, each step idempotent: vector points, graph chunks, mentions, entities nothing else
   mentions and the document node, previews, original files no other document of the tenant
   shares. Each store is counted again; a store still holding something fails the attempt
   (retried).
4. One catalog transaction removes the document's rows and completes the certificate.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.domain import Job, JobKind, JobState
from core.errors import NotFound, StoreUnavailable, TransientError
from core.metrics import JOBS
from core.records import Certificate, CertificateState
from runtime import Runtime
from stores.catalog.models import utcnow

log = logging.getLogger(__name__)

PREVIEWS = "previews"


def preview_files(rt: Runtime, tenant_id: str, document_id: str) -> list[Path]:
    """Files derived from the document for display (``<data dir>/previews/<tenant>/<doc>*``),
    when a previews folder exists."""
    folder = rt.settings.data_dir / PREVIEWS / tenant_id
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{document_id}*") if p.is_file())


def graph_counts(
    rt: Runtime,
    tenant_id: str,
    document_id: str,
    *,
    entity_keys: set[str],
    pairs: set[tuple[str, str]],
) -> dict[str, int]:
    """What the graph holds of the document: its chunks and mentions, and of the entities and
    relations it contributed, those still in the graph (after a purge, only those other
    documents also mention)."""
    held = rt.graph.export_document(tenant_id, document_id)
    chunks = sum(len(v.chunks) for v in held)
    mentions = sum(len(set(c.entity_keys)) for v in held for c in v.chunks)
    entities = len(entity_keys & rt.graph.entity_keys(tenant_id)) if entity_keys else 0
    relations = len(pairs & set(rt.graph.relations(tenant_id))) if pairs else 0
    return {"chunks": chunks, "mentions": mentions, "entities": entities, "relations": relations}


def contributed(
    rt: Runtime, tenant_id: str, document_id: str
) -> tuple[set[str], set[tuple[str, str]]]:
    """The entity keys the document's chunks mention and the entity pairs they co-mention (the
    RELATED edges it adds weight to)."""
    keys: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for version in rt.graph.export_document(tenant_id, document_id):
        for chunk in version.chunks:
            own = sorted(set(chunk.entity_keys))
            keys.update(own)
            pairs.update((a, b) for i, a in enumerate(own) for b in own[i + 1 :])
    return keys, pairs


class Purger:
    """Runs the purge step of delete jobs (see the module docstring)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def run(self, job_id: str) -> Certificate | None:
        catalog = self.rt.catalog
        job = catalog.jobs.load(job_id)
        if job.state.finished:
            return None
        cert = catalog.records.certificate_for_job(job)
        if cert.state == CertificateState.COMPLETE:  # died between the last two transactions
            self._succeed(job)
            return cert
        catalog.jobs.update(
            job_id, state=JobState.RUNNING, stage="purging", progress=0.05, new_attempt=True
        )
        if cert.state == CertificateState.REQUESTED:
            if self._refused_by_hold(job, cert):
                return None
            self._wait_for_ingestion(job)
            cert = self._count_before(job, cert)
        elif cert.state != CertificateState.REMOVING:  # refused: the document was given back
            self.rt.catalog.jobs.update(job_id, state=JobState.FAILED, error=f"purge {cert.state}")
            return None
        catalog.jobs.update(job_id, stage="removing", progress=0.3)
        after, removed = self._remove(job, cert)
        catalog.jobs.update(job_id, stage="certifying", progress=0.9)
        originals = [{**o, "removed": o["sha256"] in removed} for o in cert.originals]
        cert = catalog.records.finish_purge(
            cert.id,
            keep_job_id=job_id,
            stores_after=after,
            originals=originals,
            detail={"attempts": catalog.jobs.load(job_id).attempts},
        )
        self._succeed(job)
        catalog.records.audit(
            job.tenant_id,
            cert.requested_by,
            "purge",
            job.document_id,
            "done",
            {"certificate_id": cert.id, "reason": cert.reason},
        )
        log.info(
            "document purged",
            extra={"job_id": job_id, "document_id": job.document_id, "certificate_id": cert.id},
        )
        return cert

    def _succeed(self, job: Job) -> None:
        self.rt.catalog.jobs.update(job.id, state=JobState.SUCCEEDED, stage="done", progress=1.0)
        JOBS.labels(job.kind, "succeeded").inc()

    def _refused_by_hold(self, job: Job, cert: Certificate) -> bool:
        records = self.rt.catalog.records
        try:
            facts = records.fact(job.tenant_id, job.document_id)
        except NotFound:
            return False  # rows already gone: nothing a hold could keep
        held = records.holding(facts)
        if not held:
            return False
        names = [h.name for h in held]
        records.refuse_purge(cert.id, names)
        records.audit(
            job.tenant_id, cert.requested_by, "purge", job.document_id, "refused", {"holds": names}
        )
        cause = f"legal hold {', '.join(repr(n) for n in names)}: purge refused, nothing removed"
        self.rt.catalog.jobs.update(job.id, state=JobState.FAILED, stage="refused", error=cause)
        JOBS.labels(job.kind, "failed").inc()
        log.warning("purge refused by a legal hold", extra={"job_id": job.id, "holds": names})
        return True

    def _wait_for_ingestion(self, job: Job) -> None:
        """Queued ingestion of the document is cancelled; running ingestion is waited for
        (retried) unless its worker is gone (no progress for the broker's visibility timeout:
        its task would have been delivered again by now)."""
        jobs = self.rt.catalog.jobs
        stale = utcnow() - timedelta(seconds=self.rt.settings.broker.visibility_timeout_s)
        running = []
        for other in jobs.page(
            job.tenant_id, kind=JobKind.INGEST, document_id=job.document_id, limit=1000
        ).items:
            if other.state == JobState.QUEUED or (
                other.state == JobState.RUNNING and other.updated_at < stale
            ):
                jobs.update(other.id, state=JobState.FAILED, error="the document was purged")
            elif other.state == JobState.RUNNING:
                running.append(other.id)
        if running:
            raise TransientError(f"waiting for ingestion job {running[0]} of the document to end")

    def _count_before(self, job: Job, cert: Certificate) -> Certificate:
        rt, tenant, doc = self.rt, job.tenant_id, job.document_id
        keys, pairs = contributed(rt, tenant, doc)
        try:
            versions = rt.catalog.documents.get(tenant, doc).versions
        except NotFound:
            versions = []
        exclusive = {sha for _, sha in rt.catalog.documents.exclusive_blobs(doc)}
        originals = [
            {
                "version": v.number,
                "sha256": v.sha256,
                "size_bytes": v.size_bytes,
                "media_type": v.media_type,
            }
            for v in versions
        ]
        own = {sha for sha in exclusive if rt.blobs.path(tenant, sha).exists()}
        counts: dict[str, dict[str, int]] = {
            "vectors": {"points": rt.vectors.count(tenant, doc)},
            "graph": graph_counts(rt, tenant, doc, entity_keys=keys, pairs=pairs),
            "blobs": {"originals": len(own)},
            "previews": {"files": len(preview_files(rt, tenant, doc))},
            "catalog": rt.catalog.records.catalog_counts(doc),
        }
        stores = {
            name: {what: {"before": n} for what, n in found.items()}
            for name, found in counts.items()
        }
        # The entities and relations it contributed, to count them again once the graph no
        # longer says which they were; dropped from the row when the purge completes.
        pending = {"entity_keys": sorted(keys), "pairs": sorted([a, b] for a, b in pairs)}
        return rt.catalog.records.start_removal(
            cert.id, stores=stores, originals=originals, pending=pending
        )

    def _remove(self, job: Job, cert: Certificate) -> tuple[dict[str, dict[str, int]], set[str]]:
        """Remove the document from every store but the catalog; the counts after, and the
        originals removed (bytes another document of the tenant also holds stay)."""
        rt, tenant, doc = self.rt, job.tenant_id, job.document_id
        pending: dict[str, Any] = cert.detail.get("pending") or {}
        keys = set(pending.get("entity_keys", ()))
        pairs = {(a, b) for a, b in pending.get("pairs", ())}
        rt.vectors.delete(tenant, doc)
        rt.graph.delete_document(tenant, doc)
        for path in preview_files(rt, tenant, doc):
            path.unlink(missing_ok=True)
        # Exclusive as of now: bytes another document took meanwhile stay.
        exclusive = {sha for _, sha in rt.catalog.documents.exclusive_blobs(doc)}
        removed = {o["sha256"] for o in cert.originals} & exclusive
        for sha in sorted(removed):
            rt.blobs.delete(tenant, sha)
        after = {
            "vectors": {"points": rt.vectors.count(tenant, doc)},
            "graph": graph_counts(rt, tenant, doc, entity_keys=keys, pairs=pairs),
            "blobs": {
                "originals": sum(1 for sha in removed if rt.blobs.path(tenant, sha).exists())
            },
            "previews": {"files": len(preview_files(rt, tenant, doc))},
        }
        left = after["vectors"]["points"] + after["graph"]["chunks"] + after["graph"]["mentions"]
        if left or after["blobs"]["originals"] or after["previews"]["files"]:
            raise StoreUnavailable(f"the stores still hold part of the document: {after}")
        return after, removed
