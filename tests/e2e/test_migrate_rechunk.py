"""Re-embedding with other chunk parameters while a client queries continuously: new chunk
records are staged and embedded into a new collection (added to the graph beside the old
chunks), documents are added and deleted meanwhile, then one switch swaps the catalog's chunk
records and the alias; no query fails, every query sees the old or the new chunks, never a mix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from core.errors import NotFound
from core.settings import ChunkingSettings, Settings
from infra.migrate import vectors, verify
from ingestion.indexing import Indexer
from runtime import Runtime
from stores.catalog import staging
from stores.vectors import SearchFilter
from tests.support.migration import (
    DOCS,
    QueryingClient,
    build_interrupted_then_resumed,
    ingest,
    running,
    runtime,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Smaller chunks than the defaults (254 tokens, sections under 64 merged): 2-3 per document.
SMALL = ChunkingSettings(max_tokens=24, overlap_tokens=4, min_section_tokens=0)
SMALL_ARGS = ["--chunk-max-tokens", "24", "--chunk-overlap", "4", "--chunk-min-section", "0"]
POLICY = b"""# Remote work policy

Employees of ACME Industries may work remotely two days a week with the approval of their manager.
"""
POLICY_V2 = (
    POLICY
    + b"""
## Equipment

Laptops for remote work are provided by the IT department and insured by Globex Insurance.
"""
)


def chunk_ids(rt: Runtime, tenant: str, document_id: str) -> set[str]:
    """The catalog's chunk records of the document's active version."""
    return {
        c.id for c in rt.catalog.chunks.of_version(rt.catalog.versions.get(tenant, document_id).id)
    }


def chunked_by(rt: Runtime, indexer: Indexer, tenant: str, document_id: str) -> set[str]:
    """The chunk ids this indexer makes of the document's original."""
    version = rt.catalog.versions.get(tenant, document_id)
    data = rt.blobs.read(tenant, version.sha256)
    return {c.id for c in indexer.prepare(data, version, tenant, lambda _s, _f: None)}


def test_rechunking_swaps_chunks_and_alias_atomically_while_queries_run(
    catalog_url: str, make_settings: Callable[..., Settings]
) -> None:
    """On the SQLite and the PostgreSQL catalog (the swap is set-based SQL)."""
    with running(make_settings(catalog_url)) as api:
        rt = runtime(api)
        ids = {name: ingest(api, name, DOCS[name]) for name in ("contract", "handbook", "memo")}
        ids["policy"] = ingest(api, "policy", POLICY)
        tenant = rt.catalog.tenants.get("acme").id
        live = rt.vectors.collection
        old = {name: chunk_ids(rt, tenant, d) for name, d in ids.items()}
        policy_v1 = rt.catalog.versions.get(tenant, ids["policy"])
        probe = rt.models.sparse.encode_query("ACME Industries Lyon contract ladders", "en")
        steady = SearchFilter(tenant_id=tenant, document_ids=[ids["contract"], ids["handbook"]])

        def probe_hits() -> frozenset[str]:
            return frozenset(
                h.id for h in rt.vectors.search_sparse(probe.indices, probe.values, steady, 100)
            )

        old_hits = probe_hits()
        assert old_hits and old_hits <= old["contract"] | old["handbook"]
        with QueryingClient(api, probe_hits) as client:
            indexer = vectors.target_indexer(rt, chunking=SMALL)
            built: list[dict[str, object]] = []
            builder = threading.Thread(
                target=lambda: built.append(vectors.build(rt, indexer, batch_size=1))
            )
            builder.start()
            ids["notes"] = ingest(api, "notes", DOCS["notes"])  # during the build
            assert api.purge(ids["memo"])["state"] == "succeeded"
            v2 = api.client.post(
                f"/v1/documents/{ids['policy']}/versions",
                headers=api.h(),
                files={"file": ("policy.md", POLICY_V2)},
            ).json()
            assert api.wait(v2["job_id"])["state"] == "succeeded"
            builder.join(120)
            assert built, "the build did not finish"
            switch_started = time.monotonic()
            switched = vectors.switch(rt, indexer)
            switch_ended = time.monotonic()
            client.wait_after(switch_ended)  # the client goes on after the switch

        new_hits = probe_hits()
        assert client.failures == []
        assert new_hits != old_hits and set(client.seen) == {old_hits, new_hits}  # never a mix
        assert client.before(switch_started) >= 5  # it queried before,
        assert client.after(switch_ended) >= 5  # and after the switch
        assert rt.vectors.alias_target() == switched["to"] and switched["from"] == f"{live}__legacy"

        # The catalog, the collection and the graph hold the new chunks, and nothing else.
        kept = ("contract", "handbook", "notes", "policy")
        new = {name: chunked_by(rt, indexer, tenant, ids[name]) for name in kept}
        for name in kept:
            assert chunk_ids(rt, tenant, ids[name]) == new[name]
            assert rt.graph.chunk_ids(tenant, ids[name]) == new[name]
            assert rt.vectors.point_ids(tenant, ids[name]) == new[name]
            assert rt.catalog.versions.get(tenant, ids[name]).chunk_count == len(new[name])
        assert len(new["contract"]) > len(old["contract"])  # smaller chunks, more of them
        assert new["notes"] != chunked_by(
            rt, Indexer(rt.settings, rt.models), tenant, ids["notes"]
        )  # re-chunked too
        assert switched["rechunked_versions"] == 4
        with pytest.raises(NotFound):
            rt.catalog.documents.get(tenant, ids["memo"])
        assert rt.vectors.point_ids(tenant, ids["memo"]) == set()
        assert rt.graph.chunk_ids(tenant, ids["memo"]) == set()
        assert rt.catalog.chunks.of_version(policy_v1.id) == []  # re-versioned: v2 only
        policy_v2 = rt.catalog.versions.get(tenant, ids["policy"])
        assert set(rt.vectors.point_versions(tenant, ids["policy"]).values()) == {policy_v2.id}
        assert verify.verify(rt).ok
        everything = set().union(*new.values())
        r = api.client.post("/v1/search", headers=api.h(), json={"query": "board budget"})
        passages = r.json()["passages"]
        assert ids["notes"] in {p["document_id"] for p in passages}
        assert {p["chunk_id"] for p in passages} <= everything
        legacy = f"{live}__legacy"
        before = {
            name: chunked_by(rt, Indexer(rt.settings, rt.models), tenant, ids[name])
            for name in kept
        }
        assert staging.counts(rt.catalog) == {legacy: sum(map(len, before.values()))}  # kept

        # Rollback restores the old chunks everywhere; a second switch brings the new back.
        back = vectors.rollback(rt)
        assert rt.vectors.alias_target() == back["to"] == legacy
        for name in kept:
            assert chunk_ids(rt, tenant, ids[name]) == before[name]
            assert rt.graph.chunk_ids(tenant, ids[name]) == before[name]
        assert probe_hits() == old_hits
        assert verify.verify(rt).ok
        vectors.switch(rt, indexer)
        assert probe_hits() == new_hits
        assert {name: chunk_ids(rt, tenant, ids[name]) for name in kept} == new
        assert rt.graph.chunk_ids(tenant, ids["contract"]) == new["contract"]
        assert verify.verify(rt).ok

        # Finalize drops the previous collection and the records kept for it.
        assert vectors.finalize(rt)["dropped"] == legacy
        assert rt.vectors.sibling(legacy).dim() is None
        assert staging.counts(rt.catalog) == {}
        assert verify.verify(rt).ok


def test_an_interrupted_rechunking_resumes_without_duplicates_then_switches_from_the_cli(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plan, dry run and switch through the CLI; a document whose original is lost keeps its
    chunks."""
    from typer.testing import CliRunner

    from core.settings import get_settings
    from serving.cli import app

    settings = make_settings()
    with running(settings) as api:
        docs = {name: ingest(api, name, DOCS[name]) for name in ("contract", "handbook", "memo")}
    for name, value in (("GEDRAG_DATA_DIR", str(settings.data_dir)), ("COLUMNS", "200")):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    cli = CliRunner()

    def gedrag(*args: str) -> str:
        result = cli.invoke(app, ["migrate", *args])
        assert result.exit_code == 0, result.output
        return result.output

    try:
        dry = gedrag("reembed", *SMALL_ARGS, "--dry-run")
        assert '"versions_to_rechunk": 3' in dry and "dry run: nothing was changed" in dry

        rt = Runtime.build(settings)
        try:
            tenant = rt.catalog.tenants.get("acme").id
            assert staging.counts(rt.catalog) == {}
            old = {d: chunk_ids(rt, tenant, d) for d in docs.values()}
            indexer = vectors.target_indexer(rt, chunking=SMALL)
            new = {d: chunked_by(rt, indexer, tenant, d) for d in docs.values()}
            memo = docs["memo"]  # its original is lost: it keeps its chunks
            rt.blobs.delete(tenant, rt.catalog.versions.get(tenant, memo).sha256)
            new[memo] = old[memo]

            build_interrupted_then_resumed(rt, indexer, documents=3)
            staged = set().union(*new.values())
            collection = vectors.target(rt, indexer).new
            assert staging.counts(rt.catalog) == {collection.collection: len(staged)}
            assert set(vectors.all_point_versions(collection)) == staged
            for d in docs.values():  # the old chunks serve until the switch
                assert chunk_ids(rt, tenant, d) == old[d]
                assert rt.graph.chunk_ids(tenant, d) == old[d] | new[d]
            assert verify.verify(rt).ok  # the graph's chunks ahead of the switch are no drift
        finally:
            rt.close()

        plan = gedrag("plan")
        assert f"{collection.collection}: {len(staged)}" in plan
        switched = gedrag("reembed", *SMALL_ARGS, "--switch")
        assert '"rechunked_versions": 3' in switched
        assert "GEDRAG_CHUNKING__MAX_TOKENS=24" in switched
        assert "no drift" in gedrag("verify")
        rt = Runtime.build(settings)
        try:
            assert {d: chunk_ids(rt, tenant, d) for d in docs.values()} == new
        finally:
            rt.close()
    finally:
        get_settings.cache_clear()
