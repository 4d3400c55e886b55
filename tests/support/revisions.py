"""A catalog revision checked both ways: its tables match the ORM models, its downgrade removes
them and the upgrade brings them back (whatever revision it follows once the lead chains the
revisions into one line)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from stores.catalog import Catalog
from stores.catalog.database import MIGRATIONS
from stores.catalog.models import Base


def round_trip(catalog: Catalog, revision: str, tables: set[str]) -> None:
    with catalog.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(t in repr(d) for t in tables)] == []
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    below = ScriptDirectory.from_config(cfg).get_revision(revision).down_revision
    assert isinstance(below, str)
    with catalog.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, below)
    assert not tables & set(sa.inspect(catalog.engine).get_table_names())
    catalog.migrate()
    assert set(sa.inspect(catalog.engine).get_table_names()) >= tables
