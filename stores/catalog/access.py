"""Access lists on collections and documents (Alembic 0011), and the SQL that enforces them.

A resource's list is a header row (``access_lists``: whether a document inherits) and its
entries (``access_entries``: principal → permission). The catalog never filters a result after
reading it: :func:`readable_documents` is a WHERE clause evaluated by the database with the
document, its own list and its collection's, so a list change holds for the very next query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, and_, delete, exists, not_, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core import ids
from core.access import (
    EVERYONE,
    AccessEntry,
    AccessList,
    Permission,
    ResourceKind,
    effective_entries,
    readers,
)
from core.errors import InvalidInput, NotFound
from stores.catalog.database import Database
from stores.catalog.models import (
    AccessEntryRow,
    AccessListRow,
    CollectionRow,
    DocumentRow,
    GroupRow,
    UserRow,
    utcnow,
)

MAX_ENTRIES = 500


def _grants(
    kind: ResourceKind,
    resource: ColumnElement[str] | InstrumentedAttribute[str],
    principals: Sequence[str],
) -> ColumnElement[bool]:
    e = AccessEntryRow
    return exists().where(
        e.kind == kind.value,
        e.resource_id == resource,
        e.principal.in_(principals),
        e.permission >= Permission.READ.value,
    )


def readable_documents(principals: Sequence[str]) -> ColumnElement[bool]:
    """WHERE clause on :class:`DocumentRow`: the document's own entries let one of these
    principals read it, or it inherits and its collection's do (or its collection has none)."""
    e, h = AccessEntryRow, AccessListRow
    overrides = exists().where(
        h.kind == ResourceKind.DOCUMENT.value, h.resource_id == DocumentRow.id, h.inherit.is_(False)
    )
    collection_restricted = exists().where(
        e.kind == ResourceKind.COLLECTION.value, e.resource_id == DocumentRow.collection_id
    )
    inherited = or_(
        not_(collection_restricted),
        _grants(ResourceKind.COLLECTION, DocumentRow.collection_id, principals),
    )
    return or_(
        _grants(ResourceKind.DOCUMENT, DocumentRow.id, principals),
        and_(not_(overrides), inherited),
    )


def readable_collections(principals: Sequence[str]) -> ColumnElement[bool]:
    """WHERE clause on :class:`CollectionRow`: open, or its entries let one of these read."""
    e = AccessEntryRow
    restricted = exists().where(
        e.kind == ResourceKind.COLLECTION.value, e.resource_id == CollectionRow.id
    )
    return or_(not_(restricted), _grants(ResourceKind.COLLECTION, CollectionRow.id, principals))


class AccessRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, tenant_id: str, kind: ResourceKind, resource_id: str) -> AccessList:
        with self.db.session() as s:
            return self._list(s, tenant_id, kind, resource_id)

    def set(
        self,
        tenant_id: str,
        kind: ResourceKind,
        resource_id: str,
        entries: Iterable[tuple[str, str]],
        *,
        inherit: bool = True,
        by: str,
    ) -> AccessList:
        """Replace the resource's list with ``(principal, permission)`` pairs; a principal is
        ``everyone``, ``user:<id or username>`` or ``group:<id or name>`` of the tenant."""
        pairs = list(entries)
        if len(pairs) > MAX_ENTRIES:
            raise InvalidInput(f"at most {MAX_ENTRIES} entries per list", field="entries")
        with self.db.session() as s:
            resolved: dict[str, Permission] = {}
            for principal, permission in pairs:
                try:
                    level = Permission.named(permission)
                except ValueError as exc:
                    raise InvalidInput(str(exc), field="entries") from exc
                key = self._principal(s, tenant_id, principal)
                resolved[key] = max(level, resolved.get(key, Permission.NONE))
            s.execute(
                delete(AccessEntryRow).where(
                    AccessEntryRow.kind == kind.value, AccessEntryRow.resource_id == resource_id
                )
            )
            s.add_all(
                AccessEntryRow(
                    kind=kind.value,
                    resource_id=resource_id,
                    principal=p,
                    tenant_id=tenant_id,
                    permission=level.value,
                )
                for p, level in resolved.items()
            )
            header = s.get(AccessListRow, (kind.value, resource_id))
            if header is None:
                header = AccessListRow(
                    kind=kind.value, resource_id=resource_id, tenant_id=tenant_id
                )
                s.add(header)
            header.inherit = inherit or kind is not ResourceKind.DOCUMENT
            header.updated_at = utcnow()
            header.updated_by = by[:200]
            s.flush()
            return self._list(s, tenant_id, kind, resource_id)

    def for_document(self, tenant_id: str, document_id: str) -> tuple[AccessEntry, ...] | None:
        """The entries that decide about a document (its collection's and its own), or
        ``None`` when the tenant has no such document."""
        with self.db.session() as s:
            collection_id = s.scalar(
                select(DocumentRow.collection_id).where(
                    DocumentRow.id == document_id, DocumentRow.tenant_id == tenant_id
                )
            )
            if collection_id is None:
                return None
            return self._document_entries(s, tenant_id, document_id, collection_id)

    def for_collection(self, tenant_id: str, name: str) -> tuple[AccessEntry, ...]:
        coll = self.get(tenant_id, ResourceKind.COLLECTION, ids.collection_id(tenant_id, name))
        return effective_entries(coll, None)

    def readers(self, tenant_id: str, document_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """``document id → principals allowed to read it``: what the graph carries."""
        out: dict[str, tuple[str, ...]] = {}
        with self.db.session() as s:
            rows = s.execute(
                select(DocumentRow.id, DocumentRow.collection_id).where(
                    DocumentRow.tenant_id == tenant_id, DocumentRow.id.in_(list(document_ids))
                )
            )
            for doc_id, coll_id in rows:
                out[doc_id] = readers(self._document_entries(s, tenant_id, doc_id, coll_id))
        return out

    def documents_of(self, tenant_id: str, kind: ResourceKind, resource_id: str) -> list[str]:
        """The documents whose readers a change of this list changes."""
        if kind is ResourceKind.DOCUMENT:
            return [resource_id]
        if kind is ResourceKind.COLLECTION:
            with self.db.session() as s:
                return list(
                    s.scalars(
                        select(DocumentRow.id)
                        .where(
                            DocumentRow.tenant_id == tenant_id,
                            DocumentRow.collection_id == resource_id,
                        )
                        .order_by(DocumentRow.id)
                    )
                )
        return []  # sources: documents do not name their source yet

    def unreadable_documents(self, tenant_id: str, principals: Sequence[str]) -> list[str]:
        """Documents of the tenant these principals may not read (searches leave them out):
        the rule of :func:`readable_documents`, decided per collection first. Every question
        asks this, so the principals (a user in 1,000 groups names 1,002) are matched once
        against the tenant's entries, not once per document."""
        e, h = AccessEntryRow, AccessListRow
        with self.db.session() as s:
            restricted = set(
                s.scalars(
                    select(e.resource_id)
                    .where(e.tenant_id == tenant_id, e.kind == ResourceKind.COLLECTION.value)
                    .distinct()
                )
            )
            granted: dict[str, set[str]] = {}
            for kind, resource in s.execute(
                select(e.kind, e.resource_id).where(
                    e.tenant_id == tenant_id,
                    e.principal.in_(list(principals)),
                    e.permission >= Permission.READ.value,
                )
            ):
                granted.setdefault(kind, set()).add(resource)
            closed = restricted - granted.get(ResourceKind.COLLECTION.value, set())
            overriding = select(h.resource_id).where(
                h.tenant_id == tenant_id,
                h.kind == ResourceKind.DOCUMENT.value,
                h.inherit.is_(False),
            )
            hidden = or_(DocumentRow.id.in_(overriding), DocumentRow.collection_id.in_(closed))
            own = granted.get(ResourceKind.DOCUMENT.value, set())
            q = select(DocumentRow.id).where(DocumentRow.tenant_id == tenant_id, hidden)
            return sorted(doc for doc in s.scalars(q) if doc not in own)

    def restricted_documents(self, tenant_id: str) -> list[str]:
        """Documents someone cannot read (a list that does not let everyone read): the ones a
        re-synchronisation of the stores' readers must cover."""
        with self.db.session() as s:
            q = select(DocumentRow.id).where(
                DocumentRow.tenant_id == tenant_id,
                not_(readable_documents([EVERYONE])),
            )
            return list(s.scalars(q.order_by(DocumentRow.id)))

    # -- helpers -------------------------------------------------------------------------

    def _document_entries(
        self, s: Session, tenant_id: str, document_id: str, collection_id: str
    ) -> tuple[AccessEntry, ...]:
        coll = self._list(s, tenant_id, ResourceKind.COLLECTION, collection_id)
        doc = self._list(s, tenant_id, ResourceKind.DOCUMENT, document_id)
        return effective_entries(coll, doc)

    @staticmethod
    def _list(s: Session, tenant_id: str, kind: ResourceKind, resource_id: str) -> AccessList:
        header = s.get(AccessListRow, (kind.value, resource_id))
        if header is not None and header.tenant_id != tenant_id:
            header = None
        rows = s.scalars(
            select(AccessEntryRow)
            .where(
                AccessEntryRow.kind == kind.value,
                AccessEntryRow.resource_id == resource_id,
                AccessEntryRow.tenant_id == tenant_id,
            )
            .order_by(AccessEntryRow.principal)
        )
        return AccessList(
            kind=kind,
            resource_id=resource_id,
            entries=tuple(AccessEntry(r.principal, Permission(r.permission)) for r in rows),
            inherit=True if header is None else header.inherit,
            updated_at=None if header is None else header.updated_at,
            updated_by="" if header is None else header.updated_by,
        )

    @staticmethod
    def _principal(s: Session, tenant_id: str, principal: str) -> str:
        if principal == EVERYONE:
            return EVERYONE
        kind, _, ref = principal.partition(":")
        if kind == "user":
            row = s.get(UserRow, ref)
            if row is None or row.tenant_id != tenant_id:
                row = s.scalar(
                    select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.username == ref)
                )
            if row is None:
                raise NotFound(f"no user {ref!r} in this tenant")
            return f"user:{row.id}"
        if kind == "group":
            grp = s.get(GroupRow, ref)
            if grp is None or grp.tenant_id != tenant_id:
                grp = s.scalar(
                    select(GroupRow).where(GroupRow.tenant_id == tenant_id, GroupRow.name == ref)
                )
            if grp is None:
                raise NotFound(f"no group {ref!r} in this tenant")
            return f"group:{grp.id}"
        raise InvalidInput(
            f"a principal is 'everyone', 'user:<id or name>' or 'group:<id or name>', "
            f"not {principal!r}",
            field="entries",
        )
