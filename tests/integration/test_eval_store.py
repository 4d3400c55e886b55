"""Releases, runs and promotion decisions in the catalog, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from core.errors import NotFound
from stores.catalog import Catalog
from stores.catalog.evaluation import EvalStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(catalog_url: str) -> EvalStore:
    catalog = Catalog(catalog_url)
    catalog.migrate()
    yield EvalStore(catalog)
    catalog.dispose()


def test_releases_are_stored_once_by_id_and_found_by_name(store: EvalStore) -> None:
    first = store.save_release("rel_a", "default", "d", {"retrieval": {"top_k": 8}})
    again = store.save_release("rel_a", "renamed", "", {"retrieval": {"top_k": 8}})
    assert again == first
    assert store.get_release("default").id == "rel_a"
    assert [r.id for r in store.list_releases()] == ["rel_a"]
    with pytest.raises(NotFound):
        store.get_release("rel_missing")


def test_a_run_keeps_its_per_question_results_in_order(store: EvalStore) -> None:
    store.save_release("rel_a", "a", "", {})
    run_id = store.start_run("rel_a", "tiny", "suite_1", "0.1.0+gabc")
    assert store.runs("rel_a") == []  # running runs are not listed as results
    results = [{"id": f"q{i}", "scores": {"ndcg@10": i / 10}} for i in (3, 1, 2)]
    store.finish_run(run_id, scores={"ndcg@10": 0.2}, info={"questions": 3}, results=results)
    run = store.get_run(run_id)
    assert run.state == "succeeded" and run.finished_at is not None
    assert [r["id"] for r in run.results] == ["q3", "q1", "q2"]
    assert (run.suite_id, run.code_version, run.scores) == (
        "suite_1",
        "0.1.0+gabc",
        {"ndcg@10": 0.2},
    )
    latest = store.latest_run("rel_a", "tiny")
    assert latest is not None and latest.id == run_id
    failed = store.start_run("rel_a", "tiny", "suite_1", "v")
    store.fail_run(failed, "boom")
    assert store.get_run(failed).info["error"] == "boom"
    assert [r.id for r in store.runs("rel_a")] == [run_id]


def test_production_is_the_last_promoted_release_refusals_change_nothing(
    store: EvalStore,
) -> None:
    for rid in ("rel_a", "rel_b"):
        store.save_release(rid, rid, "", {})
    assert store.production_id() is None
    args = {"suite": "tiny", "evidence": {}, "decided_by": "test"}
    store.record_decision(release_id="rel_a", previous_id=None, promoted=True, reasons=[], **args)
    refused = store.record_decision(
        release_id="rel_b", previous_id="rel_a", promoted=False, reasons=["worse"], **args
    )
    assert store.production_id() == "rel_a"
    assert refused.reasons == ["worse"] and not refused.promoted
    store.record_decision(
        release_id="rel_b", previous_id="rel_a", promoted=True, reasons=[], **args
    )
    assert store.production_id() == "rel_b"
    assert [d.promoted for d in store.decisions("rel_b")] == [True, False]


def test_migration_0003_creates_the_tables_the_models_describe(catalog_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from stores.catalog.models import Base

    catalog = Catalog(catalog_url)
    catalog.migrate()
    try:
        with catalog.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        catalog.dispose()
    ours = [d for d in diff if "eval_" in repr(d)]
    assert ours == []
