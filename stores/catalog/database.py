"""The catalog's database: one SQLAlchemy engine, identical on SQLite and PostgreSQL.

SQLAlchemy's dialects are the two backends, and the same conformance tests run against both
engines (``tests/integration``). Every repository call opens its own transaction and returns
frozen domain objects, never ORM rows, so callers cannot lazy-load across a closed session.
Vendor errors are wrapped at this boundary: connection failures become
:class:`StoreUnavailable` (retryable), constraint races become :class:`Conflict` or are resolved
as idempotent duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import StoreUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")
# Arbitrary constant for pg_advisory_lock: serialises migrations of processes starting together.
MIGRATION_LOCK_ID = 7_305_112_026


def normalise_url(url: str) -> str:
    """``postgresql://`` would pick psycopg2, which gedrag does not install; use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """An engine, its transactions and its schema migrations."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                self.url,
                echo=echo,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, echo=echo, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent, safe to run on start)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except (OperationalError, DBAPIError) as exc:
            raise StoreUnavailable(f"catalog unreachable while migrating: {exc.orig}") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commit on success, roll back on error, connection errors wrapped."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise StoreUnavailable(f"catalog unavailable: {exc.orig}") from exc

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """One round trip to the database; :class:`StoreUnavailable` when it does not answer."""
        with self.session() as s:
            s.execute(text("SELECT 1"))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL lets the API read while the embedded worker writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()
