"""A graph backfill killed with SIGKILL mid-way resumes from its checkpoint and completes with
no duplicate (SQLite catalog graph → PostgreSQL, or → Neo4j on the session's Bolt server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.settings import GraphSettings, Settings
from infra.migrate import graph as graph_migration
from runtime import Runtime
from stores.catalog import migration_state
from stores.graph import GraphChunk, GraphEntity, VersionGraph
from stores.graph.dual import DualGraphStore
from tests.support.bolt_server import BoltServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GEDRAG = str(Path(sys.executable).with_name("gedrag"))
DOCUMENTS = 120
ENTITIES = [GraphEntity(key=f"org:{i}", name=f"Org {i}", kind="org") for i in range(12)]


def version_graph(tenant: str, n: int) -> VersionGraph:
    doc = f"doc-{n:04d}"
    chunks = [
        GraphChunk(
            id=f"{doc}-c{i}",
            ordinal=i,
            entity_keys=(ENTITIES[(n + i) % 12].key, ENTITIES[(n + 2 * i + 1) % 12].key),
        )
        for i in range(4)
    ]
    used = sorted({k for c in chunks for k in c.entity_keys})
    return VersionGraph(
        tenant_id=tenant,
        document_id=doc,
        version_id=f"{doc}-v1",
        title=f"Document {n}",
        chunks=chunks,
        entities=[e for e in ENTITIES if e.key in used],
    )


@pytest.fixture(params=["postgresql", "neo4j"])
def target(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, str]]:
    if request.param == "neo4j":
        server: BoltServer = request.getfixturevalue("neo4j")
        for name, value in server.env().items():  # for the settings and the gedrag processes
            monkeypatch.setenv(name, value)
        return {"secondary": "neo4j"}, {"GEDRAG_GRAPH__SECONDARY": "neo4j"}
    url: str = request.getfixturevalue("postgres_url")
    return (
        {"secondary": "relational", "secondary_url": url},
        {"GEDRAG_GRAPH__SECONDARY": "relational", "GEDRAG_GRAPH__SECONDARY_URL": url},
    )


def test_backfill_killed_mid_way_resumes_without_duplicates(
    make_settings: Callable[..., Settings],
    target: tuple[dict[str, Any], dict[str, str]],
    tmp_path: Path,
) -> None:
    graph_settings, graph_env = target
    settings = make_settings(graph=GraphSettings(**graph_settings))
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    rt = Runtime.build(settings)
    dual = rt.graph
    assert isinstance(dual, DualGraphStore)
    for n in range(DOCUMENTS):
        dual.primary.upsert_version(version_graph(tenant, n))
    key = graph_migration.checkpoint_key(settings)
    env = {**os.environ, "GEDRAG_DATA_DIR": str(settings.data_dir), **graph_env}

    def backfill() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"backfill-{time.monotonic_ns()}.log").open("w")
        cmd = [GEDRAG, "migrate", "backfill", "graph", "--batch-size", "3"]
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    try:
        first = backfill()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = migration_state.get_state(rt.catalog, key) or {}
            if state.get("documents", 0) >= 30:
                break
            assert first.poll() is None, "the backfill ended before it could be killed"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        killed_at = migration_state.get_state(rt.catalog, key)
        assert killed_at is not None and 30 <= killed_at["documents"] < DOCUMENTS
        assert not killed_at.get("complete")

        second = subprocess.run(
            [GEDRAG, "migrate", "backfill", "graph", "--batch-size", "3"],
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 0, second.stdout + second.stderr
        summary = json.loads(second.stdout[second.stdout.index("{") :])
        assert summary["complete"] is True
        assert summary["resumed_after"] is not None  # it did not start over
        assert summary["documents"] == DOCUMENTS

        for n in range(DOCUMENTS):
            doc = f"doc-{n:04d}"
            assert dual.secondary.export_document(tenant, doc) == dual.primary.export_document(
                tenant, doc
            )
        assert dual.secondary.relations(tenant) == dual.primary.relations(tenant)
        if graph_settings["secondary"] == "relational":
            engine = sa.create_engine(graph_settings["secondary_url"])
            with engine.connect() as conn:
                chunks = conn.execute(sa.text("SELECT count(*) FROM graph_chunks")).scalar_one()
                mentions = conn.execute(sa.text("SELECT count(*) FROM graph_mentions")).scalar_one()
            engine.dispose()
            assert (chunks, mentions) == (4 * DOCUMENTS, 8 * DOCUMENTS - _same_pair_chunks())
        runs = migration_state.list_runs(rt.catalog)
        assert [r["state"] for r in runs] == ["succeeded", "running"]  # the killed one never ended
    finally:
        if graph_settings["secondary"] == "neo4j":
            for n in range(DOCUMENTS):
                dual.secondary.delete_document(tenant, f"doc-{n:04d}")
        rt.close()


def _same_pair_chunks() -> int:
    """Chunks whose two entity keys are equal (one mention, not two)."""
    return sum(
        1
        for n in range(DOCUMENTS)
        for i in range(4)
        if ENTITIES[(n + i) % 12].key == ENTITIES[(n + 2 * i + 1) % 12].key
    )


def test_plan_and_dry_run_change_nothing(
    make_settings: Callable[..., Settings], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from core.settings import get_settings
    from serving.cli import app

    settings = make_settings(
        graph=GraphSettings(secondary="relational", secondary_url=postgres_url)
    )
    rt = Runtime.build(settings)
    dual = rt.graph
    assert isinstance(dual, DualGraphStore)
    for n in range(5):
        dual.primary.upsert_version(version_graph("t", n))
    for name, value in (
        ("GEDRAG_DATA_DIR", str(settings.data_dir)),
        ("GEDRAG_GRAPH__SECONDARY", "relational"),
        ("GEDRAG_GRAPH__SECONDARY_URL", postgres_url),
        ("COLUMNS", "200"),
    ):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        cli = CliRunner()
        plan = cli.invoke(app, ["migrate", "plan"])
        assert plan.exit_code == 0, plan.output
        assert "5 / 0" in plan.output and "(not started)" in plan.output
        dry = cli.invoke(app, ["migrate", "backfill", "graph", "--dry-run"])
        assert dry.exit_code == 0 and "dry run: nothing was changed" in dry.output
        assert graph_migration.count_documents(dual.secondary) == 0
        assert (
            migration_state.get_state(rt.catalog, graph_migration.checkpoint_key(settings)) is None
        )
        early = cli.invoke(app, ["migrate", "cutover", "graph"])
        assert early.exit_code == 1 and "backfill has not completed" in early.output
        runs = migration_state.list_runs(rt.catalog)
        assert [(r["command"], r["dry_run"], r["state"]) for r in runs] == [
            ("cutover graph", False, "failed"),
            ("backfill graph", True, "succeeded"),
            ("plan", False, "succeeded"),
        ]
    finally:
        get_settings.cache_clear()
        rt.close()
