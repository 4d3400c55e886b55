"""Tenants and their API keys (only the keys' hashes are stored)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import ids
from core.domain import ApiKeyInfo, Tenant
from core.errors import Conflict, NotFound
from stores.catalog import rows as conv
from stores.catalog.database import Database
from stores.catalog.models import ApiKeyRow, TenantRow, utcnow
from stores.catalog.people import PeopleRepository


class TenantRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str) -> Tenant:
        name = conv.clean_name(name, "name")
        try:
            with self.db.session() as s:
                row = TenantRow(id=ids.tenant_id(name), name=name)
                s.add(row)
                s.flush()
                return conv.tenant(row)
        except IntegrityError as exc:
            raise Conflict(f"tenant {name!r} already exists") from exc

    def get(self, name: str) -> Tenant:
        with self.db.session() as s:
            row = s.scalar(select(TenantRow).where(TenantRow.name == name))
            if row is None:
                raise NotFound(f"no tenant named {name!r}")
            return conv.tenant(row)

    def all(self) -> list[Tenant]:
        with self.db.session() as s:
            return [conv.tenant(r) for r in s.scalars(select(TenantRow).order_by(TenantRow.name))]

    def create_key(self, tenant_name: str, name: str = "default") -> tuple[str, ApiKeyInfo]:
        """Create a key for the tenant; the key itself is returned once and never stored. It
        belongs to the tenant's first administrator with the ``legacy`` scope (what keys could
        do before people existed: :func:`core.access.legacy_scopes`)."""
        tenant = self.get(tenant_name)
        people = PeopleRepository(self.db)
        return people.create_key(tenant.id, people.owner(tenant.id).id, name, (), legacy=True)

    def keys(self, tenant_name: str) -> list[ApiKeyInfo]:
        tenant = self.get(tenant_name)
        with self.db.session() as s:
            rows = s.scalars(
                select(ApiKeyRow)
                .where(ApiKeyRow.tenant_id == tenant.id)
                .order_by(ApiKeyRow.created_at)
            )
            return [conv.api_key(r) for r in rows]

    def revoke_key(self, key_id: str) -> ApiKeyInfo:
        with self.db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return conv.api_key(row)

    def authenticate(self, key: str) -> Tenant:
        """The tenant owning this key or session; :class:`Unauthorized` if unknown, revoked,
        expired or its user disabled."""
        return PeopleRepository(self.db).identify(key).tenant
