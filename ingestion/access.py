"""Access lists changed, and every store's copy of who may read each document kept up to date
(issue #19).

The catalog holds the lists and enforces them in its own queries (:mod:`stores.catalog.access`).
The graph keeps a copy of each document's readers, since a graph query cannot join the
catalog (:meth:`stores.graph.GraphWriter.set_readers`); nothing is re-embedded or re-extracted.
A change writes the catalog first, then the copies of every document it touches, before it
answers: the next query after the answer sees it everywhere. Ingestion brings a document's
copies up to date before its version becomes active (:func:`IngestionService.finalize`), and
:meth:`AccessService.resync` repairs any a failure left behind (``gedrag access resync``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from core.access import AccessList, Caller, ResourceKind
from runtime import Runtime
from stores.catalog.rows import in_batches

log = logging.getLogger(__name__)


def _shown(listed: AccessList) -> list[list[str]]:
    return [[e.principal, e.permission.label] for e in listed.entries]


class AccessService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def set(
        self,
        who: Caller,
        kind: ResourceKind,
        resource_id: str,
        entries: Iterable[tuple[str, str]],
        *,
        inherit: bool = True,
    ) -> AccessList:
        """Replace a resource's list (the caller's right to is checked by the API), audit the
        change with the list before and after, and update the stores' copies."""
        access = self.rt.catalog.access
        tenant_id = who.tenant.id
        before = access.get(tenant_id, kind, resource_id)
        after = access.set(tenant_id, kind, resource_id, entries, inherit=inherit, by=who.actor)
        self.rt.catalog.audit.append(
            tenant_id,
            who.actor,
            "access.change",
            resource_id,
            "done",
            {
                "kind": kind.value,
                "before": _shown(before),
                "after": _shown(after),
                "inherit": [before.inherit, after.inherit],
            },
        )
        self.sync(tenant_id, access.documents_of(tenant_id, kind, resource_id))
        return after

    def sync(self, tenant_id: str, document_ids: Sequence[str]) -> int:
        """Write the documents' readers as the catalog decides them now into the stores."""
        done = 0
        for batch in in_batches(list(document_ids)):
            for document_id, readers in self.rt.catalog.access.readers(tenant_id, batch).items():
                self.rt.graph.set_readers(tenant_id, document_id, readers)
                done += 1
        return done

    def resync(self, tenant_id: str | None = None) -> int:
        """Every live document's readers, again (of one tenant or all): after a failure, or
        after a graph store was filled by a migration from a store without them."""
        done = 0
        after: str | None = None
        while True:
            batch = self.rt.catalog.documents.live(after=after, limit=500)
            if not batch:
                return done
            after = batch[-1].document_id
            by_tenant: dict[str, list[str]] = {}
            for doc in batch:
                if tenant_id is None or doc.tenant_id == tenant_id:
                    by_tenant.setdefault(doc.tenant_id, []).append(doc.document_id)
            for tenant, docs in by_tenant.items():
                done += self.sync(tenant, docs)
