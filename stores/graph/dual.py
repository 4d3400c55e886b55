"""Dual write across two graph stores, for migrating from one to the other with no downtime.

Every write goes to both stores (the primary first); a failure of either propagates, so the
ingestion step retries and both end identical (writes are idempotent upserts). Reads come from
one store only: the primary, until `gedrag migrate cutover graph` records in the catalog that the
secondary serves reads. Each process re-reads that choice every ``recheck_s`` seconds, so a
cutover (or a rollback) reaches every API and worker process without a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from stores.graph import DocumentLabels, GraphCounts, GraphStore, VersionGraph


class DualGraphStore:
    def __init__(
        self,
        primary: GraphStore,
        secondary: GraphStore,
        *,
        reads_secondary: Callable[[], bool],
        recheck_s: float = 5.0,
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self._reads_secondary = reads_secondary
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._secondary_reads = False

    @property
    def reader(self) -> GraphStore:
        """The store that serves reads now."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= self._recheck_s:
                self._secondary_reads = self._reads_secondary()
                self._checked_at = now
            return self.secondary if self._secondary_reads else self.primary

    def refresh(self) -> None:
        """Forget the cached read role (the next read asks the catalog)."""
        with self._lock:
            self._checked_at = float("-inf")

    def setup(self) -> None:
        self.primary.setup()
        self.secondary.setup()

    def ping(self) -> None:
        """Both stores: a write needs both."""
        self.primary.ping()
        self.secondary.ping()

    def close(self) -> None:
        self.primary.close()
        self.secondary.close()

    def upsert_version(self, graph: VersionGraph) -> None:
        self.primary.upsert_version(graph)
        self.secondary.upsert_version(graph)

    def add_chunks(self, graph: VersionGraph) -> None:
        self.primary.add_chunks(graph)
        self.secondary.add_chunks(graph)

    def delete_version(self, tenant_id: str, document_id: str, version_id: str) -> None:
        self.primary.delete_version(tenant_id, document_id, version_id)
        self.secondary.delete_version(tenant_id, document_id, version_id)

    def delete_document(self, tenant_id: str, document_id: str) -> None:
        self.primary.delete_document(tenant_id, document_id)
        self.secondary.delete_document(tenant_id, document_id)

    def set_labels(self, tenant_id: str, document_id: str, labels: DocumentLabels) -> None:
        self.primary.set_labels(tenant_id, document_id, labels)
        self.secondary.set_labels(tenant_id, document_id, labels)

    def labels(self, tenant_id: str, document_id: str) -> DocumentLabels:
        return self.reader.labels(tenant_id, document_id)

    def set_readers(self, tenant_id: str, document_id: str, readers: Sequence[str]) -> None:
        self.primary.set_readers(tenant_id, document_id, readers)
        self.secondary.set_readers(tenant_id, document_id, readers)

    def readers(self, tenant_id: str, document_id: str) -> tuple[str, ...]:
        return self.reader.readers(tenant_id, document_id)

    def counts(
        self, tenant_id: str, document_id: str, version_id: str | None = None
    ) -> GraphCounts:
        return self.reader.counts(tenant_id, document_id, version_id)

    def entity_keys(self, tenant_id: str) -> set[str]:
        return self.reader.entity_keys(tenant_id)

    def relations(self, tenant_id: str) -> dict[tuple[str, str], int]:
        return self.reader.relations(tenant_id)

    def chunk_ids(self, tenant_id: str, document_id: str) -> set[str]:
        return self.reader.chunk_ids(tenant_id, document_id)

    def documents(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        return self.reader.documents(after, limit)

    def export_document(self, tenant_id: str, document_id: str) -> list[VersionGraph]:
        return self.reader.export_document(tenant_id, document_id)

    def expand(
        self,
        tenant_id: str,
        keys: Sequence[str],
        limit: int,
        principals: Sequence[str] | None = None,
    ) -> dict[str, float]:
        return self.reader.expand(tenant_id, keys, limit, principals)
