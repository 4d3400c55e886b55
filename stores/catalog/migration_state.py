"""Durable state of store migrations, kept in the catalog database.

Two small tables (Alembic 0004): ``migration_state`` (a JSON value per key: backfill
checkpoints, which graph store serves reads during dual write, alias history) and
``migration_runs`` (one row per `gedrag migrate` run: the log an operator audits).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from stores.catalog import Catalog
from stores.catalog.models import MigrationRunRow, MigrationStateRow, utcnow

# Which of the two graph stores of a dual write serves reads: {"reads": "primary"|"secondary"}.
GRAPH_ROLE = "graph.role"
# The embedding model this installation serves with when the settings leave it to the default:
# {"model": name, "previous": name | None}, written at first start and by a model switch.
EMBEDDING_MODEL = "embedding.model"


def get_state(catalog: Catalog, key: str) -> dict[str, Any] | None:
    with catalog.session() as s:
        row = s.get(MigrationStateRow, key)
        return None if row is None else dict(row.value)


def put_state(catalog: Catalog, key: str, value: dict[str, Any]) -> None:
    with catalog.session() as s:
        row = s.get(MigrationStateRow, key)
        if row is None:
            s.add(MigrationStateRow(key=key, value=value))
        else:
            row.value = value
            row.updated_at = utcnow()


def states(catalog: Catalog, prefix: str) -> dict[str, dict[str, Any]]:
    """Every state whose key starts with ``prefix``."""
    with catalog.session() as s:
        key = MigrationStateRow.key
        rows = s.scalars(select(MigrationStateRow).where(key.startswith(prefix, autoescape=True)))
        return {r.key: dict(r.value) for r in rows}


def delete_state(catalog: Catalog, key: str) -> None:
    with catalog.session() as s:
        row = s.get(MigrationStateRow, key)
        if row is not None:
            s.delete(row)


def graph_reads_secondary(catalog: Catalog) -> bool:
    """True once `gedrag migrate cutover graph` made the secondary graph store serve reads."""
    state = get_state(catalog, GRAPH_ROLE)
    return state is not None and state.get("reads") == "secondary"


def start_run(catalog: Catalog, command: str, args: dict[str, Any], *, dry_run: bool) -> str:
    run_id = str(uuid.uuid4())
    with catalog.session() as s:
        s.add(
            MigrationRunRow(id=run_id, command=command, args=args, dry_run=dry_run, state="running")
        )
    return run_id


def finish_run(
    catalog: Catalog, run_id: str, *, state: str, summary: dict[str, Any], error: str | None = None
) -> None:
    with catalog.session() as s:
        row = s.get(MigrationRunRow, run_id)
        if row is not None:
            row.state = state
            row.summary = summary
            row.error = error
            row.finished_at = utcnow()


def list_runs(catalog: Catalog, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first."""
    with catalog.session() as s:
        rows = s.scalars(
            select(MigrationRunRow).order_by(MigrationRunRow.started_at.desc()).limit(limit)
        )
        return [
            {
                "id": r.id,
                "command": r.command,
                "args": r.args,
                "dry_run": r.dry_run,
                "state": r.state,
                "summary": r.summary,
                "error": r.error,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
            }
            for r in rows
        ]


def put_state_once(catalog: Catalog, key: str, value: dict[str, Any]) -> dict[str, Any]:
    """Write ``value`` under ``key`` unless a value is there; the value that holds (two
    processes starting together both read the one that was written first)."""
    from sqlalchemy.exc import IntegrityError

    try:
        with catalog.session() as s:
            row = s.get(MigrationStateRow, key)
            if row is not None:
                return dict(row.value)
            s.add(MigrationStateRow(key=key, value=value))
    except IntegrityError:
        pass
    return get_state(catalog, key) or value
