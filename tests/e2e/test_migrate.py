"""Store migrations as an operator runs them, on real stores: graph SQLite → PostgreSQL and →
Neo4j (the session's Bolt server, tests/support/bolt_server.py) under dual write while documents
are ingested and deleted; drift injected into each store, found by `verify`, fixed by `repair`;
the embedded stores copied to production servers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from core.errors import Conflict
from core.settings import CatalogSettings, GraphSettings, QdrantSettings, Settings
from infra.migrate import graph as graph_migration
from infra.migrate import production, verify
from runtime import Runtime
from stores.graph.dual import DualGraphStore
from tests.support.bolt_server import BoltServer
from tests.support.migration import DOCS, answers, ingest, running, runtime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(params=["postgresql", "neo4j"])
def secondary(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The graph store migrated to: relational tables in PostgreSQL, or Neo4j."""
    if request.param == "neo4j":
        server: BoltServer = request.getfixturevalue("neo4j")
        return {"graph": {"secondary": "neo4j"}, "neo4j": server.settings()}
    url: str = request.getfixturevalue("postgres_url")
    return {"graph": {"secondary": "relational", "secondary_url": url}}


def test_graph_migration_under_dual_write_loses_nothing(
    make_settings: Callable[..., Settings], secondary: dict[str, Any]
) -> None:
    # 1. Before: one graph store (tables in the SQLite catalog), two documents.
    before = make_settings()
    with running(before) as api:
        ids = {name: ingest(api, name, DOCS[name]) for name in ("contract", "handbook")}
        expected = answers(api)

    # 2. Dual write on (a restart with the secondary named); the backfill runs while documents
    # are ingested, versioned and deleted.
    extra: dict[str, Any] = {"neo4j": secondary["neo4j"]} if "neo4j" in secondary else {}
    dual = make_settings(graph=GraphSettings(**secondary["graph"], role_check_s=0.05), **extra)
    with running(dual) as api:
        rt = runtime(api)
        assert isinstance(rt.graph, DualGraphStore)
        results: list[Any] = []
        writes_done = threading.Event()

        def pause_after_first_batch(done: int, _total: int | None) -> None:
            if done == 1:  # half the old documents copied: the writes below happen now
                assert writes_done.wait(60)

        backfill = threading.Thread(
            target=lambda: results.append(
                graph_migration.backfill(rt, batch_size=1, progress=pause_after_first_batch)
            )
        )
        backfill.start()
        ids["memo"] = ingest(api, "memo", DOCS["memo"])
        ids["notes"] = ingest(api, "notes", DOCS["notes"])
        assert api.purge(ids["notes"])["state"] == "succeeded"
        v2 = api.client.post(
            f"/v1/documents/{ids['memo']}/versions",
            headers=api.h(),
            files={"file": ("memo.md", DOCS["memo"] + b"\nThe audit lasts two days.\n")},
        ).json()
        assert api.wait(v2["job_id"])["state"] == "succeeded"
        assert backfill.is_alive() and not results  # the backfill is mid-way
        writes_done.set()
        backfill.join(60)
        assert results and results[0].complete and results[0].batches >= 2

        report = verify.verify(rt)
        assert report.ok, report.to_dict()
        assert report.documents == 3
        assert graph_migration.graph_drift(rt) == []
        tenant = rt.catalog.tenants.get("acme").id
        assert rt.graph.secondary.chunk_ids(tenant, ids["notes"]) == set()
        assert len(rt.graph.secondary.export_document(tenant, ids["memo"])) == 1  # v2 only

        # 3. Cutover: the secondary serves reads; answers and passages are unchanged.
        served = answers(api)
        assert [a for a, _ in served] == [a for a, _ in expected]  # as before the migration
        graph_migration.cutover(rt)
        assert rt.graph.reader is rt.graph.secondary
        assert answers(api) == served
        # Writes still reach both: a rollback loses nothing.
        ids["late"] = ingest(api, "late", DOCS["notes"].replace(b"Board", b"Late board"))
        graph_migration.rollback(rt)
        assert rt.graph.reader is rt.graph.primary
        assert verify.verify(rt).ok
        assert graph_migration.graph_drift(rt) == []
        graph_migration.cutover(rt)
        final = graph_migration.finalize(rt)
        assert final["deploy"]["GEDRAG_GRAPH__BACKEND"] == secondary["graph"]["secondary"]


def test_cutover_refuses_an_unfinished_backfill(
    make_settings: Callable[..., Settings], postgres_url: str
) -> None:
    settings = make_settings(
        graph=GraphSettings(secondary="relational", secondary_url=postgres_url)
    )
    rt = Runtime.build(settings)
    try:
        with pytest.raises(Conflict, match="backfill has not completed"):
            graph_migration.cutover(rt)
        assert graph_migration.role(rt) == "primary"
    finally:
        rt.close()


@pytest.fixture
def drifted(make_settings: Callable[..., Settings]) -> tuple[Settings, dict[str, str]]:
    """Four documents; then a deleted Qdrant point (contract), a missing mention (handbook)
    and a stale version left in the graph (memo); notes stays intact."""
    settings = make_settings()
    with running(settings) as api:
        ids = {name: ingest(api, name, data) for name, data in DOCS.items()}
        rt = runtime(api)
        tenant = rt.catalog.tenants.get("acme").id
        old_memo = rt.graph.export_document(tenant, ids["memo"])
        v2 = api.client.post(
            f"/v1/documents/{ids['memo']}/versions",
            headers=api.h(),
            files={"file": ("memo.md", DOCS["memo"] + b"\nA second version.\n")},
        ).json()
        assert api.wait(v2["job_id"])["state"] == "succeeded"
    rt = Runtime.build(settings)
    try:
        point = sorted(rt.vectors.point_ids(tenant, ids["contract"]))[0]
        rt.vectors.delete_ids([point])
        with rt.catalog.engine.begin() as conn:
            chunk = conn.execute(
                sa.text(
                    "SELECT m.chunk_id, m.entity_key FROM graph_mentions m JOIN graph_chunks c "
                    "ON c.id = m.chunk_id WHERE c.document_id = :d LIMIT 1"
                ),
                {"d": ids["handbook"]},
            ).one()
            conn.execute(
                sa.text("DELETE FROM graph_mentions WHERE chunk_id = :c AND entity_key = :k"),
                {"c": chunk[0], "k": chunk[1]},
            )
        for stale in old_memo:
            rt.graph.upsert_version(stale)
    finally:
        rt.close()
    return settings, ids


def test_verify_finds_injected_drift_and_repair_fixes_exactly_those(
    drifted: tuple[Settings, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.settings import get_settings
    from serving.cli import app

    settings, ids = drifted
    monkeypatch.setenv("GEDRAG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    cli = CliRunner()
    try:
        found = cli.invoke(app, ["migrate", "verify", "--json"])
        assert found.exit_code == 1, found.output
        assert '"drifted": 3' in found.output

        rt = Runtime.build(settings)
        try:
            report = verify.verify(rt)
            by_doc = {d.document_id: d.stores for d in report.drift}
            assert by_doc == {
                ids["contract"]: {"vectors"},
                ids["handbook"]: {"graph"},
                ids["memo"]: {"graph"},
            }, report.to_dict()
            problems = {d.document_id: " ".join(d.problems) for d in report.drift}
            assert "1 missing" in problems[ids["contract"]]
            assert "mentions" in problems[ids["handbook"]]
            assert "of another version" in problems[ids["memo"]]
            tenant = rt.catalog.tenants.get("acme").id
            untouched = rt.vectors.point_versions(tenant, ids["notes"])
        finally:
            rt.close()

        fixed = cli.invoke(app, ["migrate", "repair"])
        assert fixed.exit_code == 0, fixed.output
        clean = cli.invoke(app, ["migrate", "verify"])
        assert clean.exit_code == 0, clean.output
        assert "no drift in 4 documents" in clean.output
        runs = cli.invoke(app, ["migrate", "runs"])
        assert "repair" in runs.output and "failed" in runs.output  # the first verify
    finally:
        get_settings.cache_clear()

    rt = Runtime.build(settings)
    try:
        result = verify.repair(rt, verify.verify(rt))
        assert result.repaired == []  # nothing left to repair
        assert rt.vectors.point_versions(tenant, ids["notes"]) == untouched
    finally:
        rt.close()


def test_embedded_stores_copied_to_production_answer_the_same(
    make_settings: Callable[..., Settings], postgres_url: str, tmp_path: Path
) -> None:
    embedded = make_settings()
    with running(embedded) as api:
        for name in ("contract", "handbook"):
            ingest(api, name, DOCS[name])
        expected = answers(api)
    target = production.Target(
        catalog_url=postgres_url,
        qdrant_path=str(tmp_path / "qdrant-server"),
        graph_backend="relational",
    )
    rt = Runtime.build(embedded)
    try:
        dry = production.copy_all(rt, target, dry_run=True)
        assert dry["catalog"]["documents"] == 2
        first = production.copy_all(rt, target)
        again = production.copy_all(rt, target)  # idempotent: the same, nothing removed
        assert first["vectors"]["points"] == again["vectors"]["points"] > 0
        assert again["vectors"]["removed"] == 0 and again["graph"]["removed"] == 0
    finally:
        rt.close()
    prod = embedded.model_copy(
        update={
            "catalog": CatalogSettings(url=postgres_url),
            "qdrant": QdrantSettings(path=tmp_path / "qdrant-server"),
        }
    )
    rt = Runtime.build(prod)
    try:
        assert verify.verify(rt).ok
    finally:
        rt.close()
    with running(prod) as api:
        assert answers(api) == expected
