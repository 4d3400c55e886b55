"""The sources' repository on both catalog engines (SQLite and PostgreSQL): leases taken by
one round only, round-robin order of due sources, items and origins, and the 0009 migration
(down and up again, and the same schema as the models)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.errors import Conflict, NotFound
from stores.catalog import Catalog
from stores.catalog.models import Base, utcnow

pytestmark = pytest.mark.integration

TABLES = {"sources", "source_items"}


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    c = Catalog(catalog_url)
    c.migrate()
    yield c
    c.dispose()


def _source(catalog: Catalog, tenant: str, name: str) -> str:
    return catalog.sources.create(
        tenant,
        name=name,
        kind="folder",
        collection="scans",
        tags=["b", "a", "a"],
        config={"kind": "folder", "path": "/srv/scans"},
        secret="",
        interval_s=60,
        on_delete="delete",
    ).id


def test_one_round_at_a_time_even_when_claimed_concurrently(catalog: Catalog) -> None:
    tenant = catalog.tenants.create("acme").id
    source_id = _source(catalog, tenant, "scans")
    now = utcnow()
    tokens: list[str | None] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        tokens.append(catalog.sources.claim(source_id, now, lease_s=60))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(t is not None for t in tokens) == 1


def test_due_sources_are_taken_least_recently_started_first(catalog: Catalog) -> None:
    acme = catalog.tenants.create("acme").id
    globex = catalog.tenants.create("globex").id
    a = _source(catalog, acme, "a")
    b = _source(catalog, globex, "b")
    repo = catalog.sources
    assert repo.get(acme, a).tags == ("a", "b")
    now = utcnow()
    token = repo.claim(a, now, lease_s=60)
    assert token is not None
    assert [r.id for r in repo.due(now, 10)] == [b]  # a is in a round
    repo.finish(
        a,
        token,
        now=now,
        ok=True,
        error=None,
        cursor="c1",
        save_cursor=True,
        next_sync_at=now,
        summary={"counts": {"taken": 1}},
    )
    # Both due: b never started, a just did: b first.
    assert [r.id for r in repo.due(now + timedelta(seconds=1), 10)] == [b, a]
    assert repo.get(acme, a).cursor == "c1"
    with pytest.raises(NotFound):
        repo.get(globex, a)  # another tenant's source


def test_a_sync_requested_during_a_round_runs_right_after_it(catalog: Catalog) -> None:
    tenant = catalog.tenants.create("acme").id
    source_id = _source(catalog, tenant, "scans")
    repo = catalog.sources
    now = utcnow()
    token = repo.claim(source_id, now, lease_s=60)
    assert token is not None
    with pytest.raises(Conflict, match="syncing"):
        repo.request(tenant, source_id, reset_cursor=True)
    repo.request(tenant, source_id)
    done = repo.finish(
        source_id,
        token,
        now=now,
        ok=True,
        error=None,
        cursor=None,
        save_cursor=False,
        next_sync_at=now + timedelta(hours=1),
        summary={},
    )
    assert done is not None and done.next_sync_at == now and not done.sync_requested


def test_items_outcomes_origins_and_renames(catalog: Catalog) -> None:
    tenant = catalog.tenants.create("acme").id
    a = _source(catalog, tenant, "a")
    b = _source(catalog, tenant, "b")
    repo = catalog.sources
    long_key = "deep/" * 300 + "file.pdf"  # 1,508 characters: keys are not indexed columns
    repo.record(a, tenant, long_key, outcome="taken", fingerprint="1:2:3")
    repo.record(a, tenant, "x.md", outcome="failed", fingerprint="4:5:6", detail="too large")
    assert repo.known(a) == {long_key: "1:2:3", "x.md": "4:5:6"}
    repo.rename(a, "x.md", "y/x.md", "4:5:7")
    assert repo.known(a) == {long_key: "1:2:3", "y/x.md": "4:5:7"}
    assert repo.item(a, "y/x.md").outcome == "failed"  # type: ignore[union-attr]
    repo.record(a, tenant, long_key, outcome="deleted", present=False, fingerprint="1:2:3")
    assert repo.known(a) == {"y/x.md": "4:5:7"}
    assert repo.counts([a, b]) == {a: {"deleted": 1, "failed": 1}, b: {}}
    page = repo.page(tenant, a, limit=1)
    assert len(page.items) == 1 and page.next_cursor is not None
    rest = repo.page(tenant, a, cursor=page.next_cursor, limit=10)
    assert {i.key for i in page.items + rest.items} == {long_key, "y/x.md"}
    assert [i.key for i in repo.page(tenant, a, outcome="failed").items] == ["y/x.md"]
    with pytest.raises(ValueError, match="unknown outcome"):
        repo.record(a, tenant, "z", outcome="lost")
    repo.delete(tenant, a)
    assert repo.known(a) == {} and repo.counts([a]) == {a: {}}


def test_the_0009_migration_downgrades_and_upgrades(catalog: Catalog) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from stores.catalog.database import MIGRATIONS

    with catalog.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(t in repr(d) for t in TABLES)] == []
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Below 0009 whatever it follows once the revisions are chained into one line.
    below = ScriptDirectory.from_config(cfg).get_revision("0009").down_revision
    assert isinstance(below, str)
    with catalog.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, below)
    assert not TABLES & set(sa.inspect(catalog.engine).get_table_names())
    catalog.migrate()
    assert set(sa.inspect(catalog.engine).get_table_names()) >= TABLES
