"""The Neo4j graph store in production's path, end to end, on the session's Bolt server
(ArcadeDB's, or the real Neo4j that ``GEDRAG_NEO4J__URI`` names: tests/support/bolt_server.py).

``GEDRAG_GRAPH__BACKEND=neo4j``: ingestion, new versions and deletion written by the embedded
worker through the adapter and the official driver; graph expansion at query time, congruent with
the embedded store's; the migration relational → Neo4j → relational run with the CLI as an
operator runs it, ending in `gedrag migrate verify` with no drift; drift injected into Neo4j,
found by `verify` and fixed by `repair`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from core.settings import FusionWeights, GraphSettings, Settings, get_settings
from infra.migrate import verify
from runtime import Runtime
from stores.catalog import Catalog
from stores.graph import GraphChunk, GraphEntity, VersionGraph
from stores.graph.relational import RelationalGraphStore
from stores.vectors import SearchFilter
from tests.support.bolt_server import BoltServer
from tests.support.migration import DOCS, answers, ingest, running, runtime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUERY = "Which agreements involve ACME Industries?"


@pytest.fixture
def on_neo4j(make_settings: Callable[..., Settings], neo4j: BoltServer) -> Settings:
    """gedrag with its graph in Neo4j only, as the compose stack runs it."""
    return make_settings(graph=GraphSettings(backend="neo4j"), neo4j=neo4j.settings())


def catalog_chunks(rt: Runtime, document_id: str) -> set[str]:
    with rt.catalog.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id FROM chunks WHERE document_id = :d"), {"d": document_id}
        )
        return set(rows.scalars())


def tenant_nodes(neo4j: BoltServer, tenant: str) -> int:
    [row] = neo4j.run("MATCH (n) WHERE n.tenant_id = $t RETURN count(n) AS n", t=tenant)
    n = row["n"]
    assert isinstance(n, int)
    return n


def test_versions_and_deletes_reach_the_neo4j_graph(on_neo4j: Settings, neo4j: BoltServer) -> None:
    with running(on_neo4j) as api:
        rt = runtime(api)
        tenant = rt.catalog.tenants.get("acme").id
        doc = ingest(api, "contract", DOCS["contract"])
        kept = ingest(api, "handbook", DOCS["handbook"])
        v1 = catalog_chunks(rt, doc)
        assert rt.graph.chunk_ids(tenant, doc) == v1 and v1
        keys = rt.graph.entity_keys(tenant)
        assert {"acme industries", "lyon", "ref:ctr-2024-0042"} <= keys
        assert ("acme industries", "lyon") in rt.graph.relations(tenant)

        changed = DOCS["contract"].replace(b"CTR-2024-0042", b"CTR-2025-0001")
        up = api.client.post(
            f"/v1/documents/{doc}/versions", headers=api.h(), files={"file": ("c.md", changed)}
        ).json()
        assert api.wait(up["job_id"])["state"] == "succeeded"
        v2 = catalog_chunks(rt, doc)
        assert rt.graph.chunk_ids(tenant, doc) == v2 and v2.isdisjoint(v1)
        [held] = rt.graph.export_document(tenant, doc)  # the new version only
        assert {c.id for c in held.chunks} == v2
        keys = rt.graph.entity_keys(tenant)
        assert "ref:ctr-2025-0001" in keys and "ref:ctr-2024-0042" not in keys  # orphan gone

        assert api.purge(doc)["state"] == "succeeded"
        assert rt.graph.export_document(tenant, doc) == []
        assert rt.graph.chunk_ids(tenant, kept) == catalog_chunks(rt, kept)
        assert rt.graph.entity_keys(tenant) == {
            e.key for v in rt.graph.export_document(tenant, kept) for e in v.entities
        }
        assert doc not in dict(rt.graph.documents(None, 100))

        assert api.purge(kept)["state"] == "succeeded"
        assert rt.graph.relations(tenant) == {}
        assert tenant_nodes(neo4j, tenant) == 0  # no chunk, entity or document node left


def test_search_expands_through_neo4j_as_through_the_embedded_store(
    on_neo4j: Settings, tmp_path: Path
) -> None:
    from retrieval import factory

    with running(on_neo4j) as api:
        ids = [ingest(api, name, data) for name, data in DOCS.items()]
        r = api.client.post("/v1/search", headers=api.h(), json={"query": QUERY})
        assert r.status_code == 200, r.text
        assert "graph" in r.json()["timings_ms"] and r.json()["passages"]

        rt = runtime(api)
        tenant = rt.catalog.tenants.get("acme").id
        keys = [e.key for e in rt.models.extractor.extract(QUERY, "en")]
        assert keys == ["acme industries"]
        reached = rt.graph.expand(tenant, keys, 50)
        # The same version graphs, rebuilt from the catalog into the embedded store, expand the
        # same way: chunk for chunk, score for score, in the same order.
        embedded = RelationalGraphStore(Catalog(f"sqlite:///{tmp_path / 'ref.db'}"), owns=True)
        embedded.setup()
        try:
            for document_id in ids:
                graph = verify.expected_graph(rt, tenant, document_id)
                assert graph is not None
                embedded.upsert_version(graph)
            assert list(reached.items()) == list(embedded.expand(tenant, keys, 50).items())
        finally:
            embedded.close()
        # The three documents that name ACME Industries, each chunk 1 for it and 0.5 for each
        # entity it mentions that is related to it (Lyon, the board, the contract's amount...).
        named = {d for d, name in zip(ids, DOCS, strict=True) if b"ACME Industries" in DOCS[name]}
        assert {d for d in ids if catalog_chunks(rt, d) & set(reached)} == named
        assert len(named) == 3 and all(score > 1.0 for score in reached.values())

        # Retrieval ranks by it: with only the graph weighted, the graph's chunks come first,
        # best graph score first.
        retriever = factory.qa(rt).retriever
        only = FusionWeights(dense=0, sparse=0, graph=1, sentence=0, sentence_terms=0)
        cfg = retriever.config.model_copy(
            update={"language_weights": {"en": only}, "mmr_lambda": 1}
        )
        found = retriever.search(
            QUERY, SearchFilter(tenant_id=tenant), top_k=len(reached), config=cfg
        ).passages
        assert {p.chunk_id for p in found} == set(reached)
        scores = [reached[p.chunk_id] for p in found]
        assert scores == sorted(scores, reverse=True)


class Cli:
    """`gedrag migrate ...` in this process, with the environment an operator would set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
        self.monkeypatch = monkeypatch
        self.runner = CliRunner()
        monkeypatch.setenv("GEDRAG_DATA_DIR", str(data_dir))
        monkeypatch.setenv("COLUMNS", "200")

    def env(self, **values: str) -> None:
        """Set these GEDRAG_GRAPH__* / GEDRAG_NEO4J__* and unset the others."""
        for name in (
            *(f"GEDRAG_GRAPH__{k}" for k in ("BACKEND", "URL", "SECONDARY", "SECONDARY_URL")),
            *(f"GEDRAG_NEO4J__{k}" for k in ("URI", "USER", "PASSWORD", "DATABASE")),
        ):
            self.monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)

    def __call__(self, *args: str, exit_code: int = 0) -> str:
        from serving.cli import app

        get_settings.cache_clear()
        done = self.runner.invoke(app, ["migrate", *args])
        get_settings.cache_clear()
        assert done.exit_code == exit_code, done.output
        return done.output

    def migrate_graph(self) -> str:
        """The runbook's graph steps under the dual write the environment names."""
        self("backfill", "graph", "--batch-size", "2")
        self("cutover", "graph")
        self("verify")
        return self("finalize", "graph")


def test_relational_to_neo4j_and_back_verifies_with_no_drift(
    make_settings: Callable[..., Settings],
    on_neo4j: Settings,
    neo4j: BoltServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    before = make_settings()
    with running(before) as api:
        ids = {name: ingest(api, name, DOCS[name]) for name in ("contract", "handbook", "memo")}
        v2 = api.client.post(
            f"/v1/documents/{ids['memo']}/versions",
            headers=api.h(),
            files={"file": ("memo.md", DOCS["memo"] + b"\nThe audit lasts two days.\n")},
        ).json()
        assert api.wait(v2["job_id"])["state"] == "succeeded"
        expected = answers(api)
        tenant = runtime(api).catalog.tenants.get("acme").id

    # 1. relational (the catalog's tables) → Neo4j.
    cli = Cli(monkeypatch, before.data_dir)
    cli.env(GEDRAG_GRAPH__SECONDARY="neo4j", **neo4j.env())
    assert '"GEDRAG_GRAPH__BACKEND": "neo4j"' in cli.migrate_graph()

    # 2. Neo4j alone serves the same answers, and takes new writes.
    with running(on_neo4j) as api:
        assert answers(api) == expected
        ids["notes"] = ingest(api, "notes", DOCS["notes"])
        assert api.purge(ids["handbook"])["state"] == "succeeded"
        held = {d: runtime(api).graph.export_document(tenant, d) for d in ids.values()}
    assert held[ids["handbook"]] == [] and held[ids["notes"]]

    # 3. Neo4j → relational, into a database of its own.
    back = f"sqlite:///{tmp_path / 'graph-back.db'}"
    cli.env(
        GEDRAG_GRAPH__BACKEND="neo4j",
        GEDRAG_GRAPH__SECONDARY="relational",
        GEDRAG_GRAPH__SECONDARY_URL=back,
        **neo4j.env(),
    )
    final = cli.migrate_graph()
    assert '"GEDRAG_GRAPH__BACKEND": "relational"' in final and back in final

    # 4. The deployed settings: the relational store alone, and no drift anywhere.
    cli.env(GEDRAG_GRAPH__URL=back)
    assert "no drift in 3 documents" in cli("verify")
    store = RelationalGraphStore(Catalog(back), owns=True)
    try:
        assert {d: store.export_document(tenant, d) for d in ids.values()} == held
        assert sorted(d for d, _ in store.documents(None, 100)) == sorted(
            d for d, v in held.items() if v
        )
    finally:
        store.close()


def test_verify_finds_drift_injected_into_neo4j_and_repair_fixes_exactly_it(
    on_neo4j: Settings, neo4j: BoltServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(on_neo4j) as api:
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
        notes = rt.graph.export_document(tenant, ids["notes"])

    # Behind the store's back: a lost chunk, a lost mention, a stale version, a lost delete.
    lost = neo4j.run(
        "MATCH (c:Chunk {document_id: $d}) WITH c ORDER BY c.id LIMIT 1 "
        "DETACH DELETE c RETURN count(*) AS n",
        d=ids["contract"],
    )
    assert lost == [{"n": 1}]
    mention = neo4j.run(
        "MATCH (:Chunk {document_id: $d})-[m:MENTIONS]->() WITH m LIMIT 1 "
        "DELETE m RETURN count(*) AS n",
        d=ids["handbook"],
    )
    assert mention == [{"n": 1}]
    rt = Runtime.build(on_neo4j)
    try:
        for stale in old_memo:
            rt.graph.upsert_version(stale)
        ghost = VersionGraph(
            tenant_id=tenant,
            document_id="ghost",
            version_id="ghost-v1",
            title="ghost",
            chunks=[GraphChunk(id="ghost-c1", ordinal=0, entity_keys=("acme industries",))],
            entities=[GraphEntity(key="acme industries", name="ACME Industries", kind="org")],
        )
        rt.graph.upsert_version(ghost)
        report = verify.verify(rt)
        by_doc = {d.document_id: (d.stores, d.orphan) for d in report.drift}
        assert by_doc == {
            ids["contract"]: ({"graph"}, False),
            ids["handbook"]: ({"graph"}, False),
            ids["memo"]: ({"graph"}, False),
            "ghost": ({"graph"}, True),
        }, report.to_dict()
    finally:
        rt.close()

    cli = Cli(monkeypatch, on_neo4j.data_dir)
    cli.env(GEDRAG_GRAPH__BACKEND="neo4j", **neo4j.env())
    assert '"drifted": 4' in cli("verify", "--json", exit_code=1)
    cli("repair")
    assert "no drift in 4 documents" in cli("verify")
    rt = Runtime.build(on_neo4j)
    try:
        assert rt.graph.export_document(tenant, ids["notes"]) == notes  # untouched
        assert rt.graph.export_document(tenant, "ghost") == []
        assert len(rt.graph.export_document(tenant, ids["memo"])) == 1
    finally:
        rt.close()
