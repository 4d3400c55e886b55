"""Collections: named groups of a tenant's documents."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core import ids
from core.domain import Collection
from core.errors import Conflict, NotFound
from stores.catalog import rows as conv
from stores.catalog.access import readable_collections, readable_documents
from stores.catalog.database import Database
from stores.catalog.models import CollectionRow, DocumentRow


class CollectionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, tenant_id: str, name: str, description: str = "", *, field: str = "name"
    ) -> Collection:
        """A new collection; :class:`InvalidInput` (naming ``field``) for a name that breaks
        :data:`~stores.catalog.rows.COLLECTION_NAME_RULE`, :class:`Conflict` if it exists."""
        name = conv.collection_name(name, field)
        try:
            with self.db.session() as s:
                row = CollectionRow(
                    id=ids.collection_id(tenant_id, name),
                    tenant_id=tenant_id,
                    name=name,
                    description=description,
                )
                s.add(row)
                s.flush()
                return conv.collection(row, 0)
        except IntegrityError as exc:
            raise Conflict(f"collection {name!r} already exists") from exc

    def ensure(self, tenant_id: str, name: str) -> Collection:
        """The named collection, created if missing (uploads name their collection). An
        existing collection is found by its name as it is, even one that predates the naming
        rule; a new one must follow it."""
        name = conv.clean_name(name, "collection")
        with self.db.session() as s:
            row = s.get(CollectionRow, ids.collection_id(tenant_id, name))
            if row is not None:
                return conv.collection(row, 0)
        try:
            return self.create(tenant_id, name, field="collection")
        except Conflict:  # created concurrently: it exists now, which is all we need
            with self.db.session() as s:
                row = s.get(CollectionRow, ids.collection_id(tenant_id, name))
                assert row is not None
                return conv.collection(row, 0)

    def of_tenant(
        self, tenant_id: str, readable_by: Sequence[str] | None = None
    ) -> list[Collection]:
        """``readable_by``: only the collections, and count only the documents, that one of
        these principals may read (issue #19; ``None``: all)."""
        with self.db.session() as s:
            docs = select(DocumentRow.collection_id, func.count().label("n")).where(
                DocumentRow.tenant_id == tenant_id
            )
            if readable_by is not None:
                docs = docs.where(readable_documents(readable_by))
            counts = docs.group_by(DocumentRow.collection_id).subquery()
            q = (
                select(CollectionRow, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.collection_id == CollectionRow.id)
                .where(CollectionRow.tenant_id == tenant_id)
                .order_by(CollectionRow.name)
            )
            if readable_by is not None:
                q = q.where(readable_collections(readable_by))
            rows = s.execute(q)
            return [conv.collection(row, n) for row, n in rows]

    def delete(self, tenant_id: str, name: str) -> None:
        """Delete an empty collection; :class:`Conflict` while it still holds documents."""
        with self.db.session() as s:
            row = s.get(CollectionRow, ids.collection_id(tenant_id, name))
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no collection named {name!r}")
            n = s.scalar(select(func.count()).where(DocumentRow.collection_id == row.id))
            if n:
                raise Conflict(
                    f"collection {name!r} still holds {n} document(s); delete them first"
                )
            s.delete(row)
