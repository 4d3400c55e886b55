"""Alembic environment: runs on the connection the catalog hands over (see Catalog.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from stores.catalog.models import Base

config = context.config
connection = config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through stores.catalog.Catalog.migrate()")

# render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
