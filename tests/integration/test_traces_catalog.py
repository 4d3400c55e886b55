"""The monitoring aggregate on both catalog engines: traces written in batches (a batch twice
stores each trace once), filters and pages, tenant isolation, feedback, retention, the
documents a trace cites, experiments (one running per tenant, compare-and-set), drift reports,
the background writer over a real catalog, and the 0010 migration down and up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from monitoring.recorder import TraceWriter
from monitoring.traces import Capture, Environment, Served
from retrieval.search import SearchResult
from retrieval.types import Answer, Passage
from stores.catalog import Catalog
from stores.catalog.models import utcnow
from stores.catalog.traces import Feedback, TraceFilter, TraceRecord, TraceRepository
from stores.vectors import SearchFilter
from tests.support.revisions import round_trip

pytestmark = pytest.mark.integration

TABLES = {"traces", "trace_documents", "trace_settings", "experiments", "monitor_reports"}


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    c = Catalog(catalog_url)
    c.migrate()
    for name in ("acme", "globex"):
        c.tenants.create(name)
    yield c
    c.dispose()


def tid(catalog: Catalog, name: str) -> str:
    return catalog.tenants.get(name).id


def record(tenant: str, n: int, **kw: Any) -> TraceRecord:
    values: dict[str, Any] = {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "tenant_id": tenant,
        "created_at": utcnow() - timedelta(minutes=100 - n),
        "route": "ask",
        "caller": "key:abc",
        "release_id": "rel_a" if n % 2 else "rel_b",
        "arm": "production",
        "experiment_id": None,
        "parent_id": None,
        "question": f"question {n}",
        "language": "en",
        "refused": n % 3 == 0,
        "latency_ms": 40.0 + n,
        "top_score": 0.5,
        "citations_dropped": 0,
        "data": {"answer": {"text": f"answer {n}", "grounded": True, "citations": []}},
        "document_ids": ("doc-1",),
    }
    values.update(kw)
    return TraceRecord(**values)


def test_traces_are_stored_once_paged_filtered_and_kept_to_their_tenant(catalog: Catalog) -> None:
    repo = catalog.traces
    acme, globex = tid(catalog, "acme"), tid(catalog, "globex")
    batch = [record(acme, n) for n in range(1, 11)]
    assert repo.add(batch) == 10
    assert repo.add(batch[:3]) == 0  # a batch written again (a lost commit answer)
    repo.add([record(globex, 99)])
    first = repo.page(acme, TraceFilter(), limit=4)
    assert [t.question for t in first.items] == [f"question {n}" for n in (10, 9, 8, 7)]
    rest = list(repo.iterate(acme, TraceFilter(), batch=4))
    assert len(rest) == 10 and len({t.id for t in rest}) == 10
    assert {t.release_id for t in repo.page(acme, TraceFilter(release_id="rel_a")).items} == {
        "rel_a"
    }
    refused = repo.page(acme, TraceFilter(refused=True)).items
    assert [t.question for t in refused] == ["question 9", "question 6", "question 3"]
    since = batch[7].created_at
    assert len(repo.page(acme, TraceFilter(since=since)).items) == 3
    # Another tenant's trace does not exist for this one.
    with pytest.raises(NotFound):
        repo.get(acme, record(globex, 99).id)
    assert repo.get(globex, record(globex, 99).id).question == "question 99"
    assert len(repo.points(acme)) == 10 and repo.points(globex)[0].question == "question 99"


def test_feedback_on_answers_only(catalog: Catalog) -> None:
    repo, acme = catalog.traces, tid(catalog, "acme")
    repo.add([record(acme, 1), record(acme, 2, route="search"), record(acme, 3, arm="shadow")])
    rated = repo.set_feedback(acme, record(acme, 1).id, Feedback("down", "wrong year", "2025"))
    assert rated.feedback is not None and rated.feedback.corrected_answer == "2025"
    assert rated.feedback.rated_at is not None
    again = repo.set_feedback(acme, rated.id, Feedback("up"))  # a new rating replaces it
    assert again.feedback == Feedback("up", "", None, again.feedback.rated_at)  # type: ignore[union-attr]
    assert [t.id for t in repo.page(acme, TraceFilter(feedback="up")).items] == [rated.id]
    assert len(repo.page(acme, TraceFilter(feedback="unrated")).items) == 2
    with pytest.raises(InvalidInput, match="no answer"):
        repo.set_feedback(acme, record(acme, 2).id, Feedback("up"))
    with pytest.raises(InvalidInput, match="never shown"):
        repo.set_feedback(acme, record(acme, 3).id, Feedback("up"))
    with pytest.raises(NotFound):
        repo.set_feedback(tid(catalog, "globex"), rated.id, Feedback("down"))


def test_retention_per_tenant(catalog: Catalog) -> None:
    repo = catalog.traces
    acme, globex = tid(catalog, "acme"), tid(catalog, "globex")
    old = utcnow() - timedelta(days=10)
    repo.add([record(acme, 1, created_at=old), record(acme, 2), record(globex, 3, created_at=old)])
    repo.set_retention(acme, 5)
    assert repo.retention(acme) == 5 and repo.retention(globex) is None
    assert repo.purge_expired(default_days=30) == {acme: 1}
    assert [t.question for t in repo.iterate(acme, TraceFilter())] == ["question 2"]
    assert repo.purge_expired(default_days=7) == {globex: 1}
    with pytest.raises(InvalidInput):
        repo.set_retention(acme, 0)
    with catalog.engine.connect() as conn:  # the cited documents went with their traces
        assert conn.execute(sa.text("SELECT count(*) FROM trace_documents")).scalar_one() == 1


def test_one_running_experiment_per_tenant(catalog: Catalog) -> None:
    repo, acme = catalog.traces, tid(catalog, "acme")
    exp = repo.start_experiment(
        acme, release_id="rel_b", champion_id="rel_a", mode="shadow", share=0
    )
    assert exp.state == "running" and exp.canary_since is None
    with pytest.raises(Conflict):
        repo.start_experiment(acme, release_id="rel_c", champion_id=None, mode="shadow", share=0)
    other = repo.start_experiment(
        tid(catalog, "globex"), release_id="rel_c", champion_id=None, mode="canary", share=0.2
    )
    assert other.canary_since is not None
    with pytest.raises(InvalidInput, match="share"):
        repo.set_mode(acme, exp.id, "canary", 0.9)
    canary = repo.set_mode(acme, exp.id, "canary", 0.1)
    assert canary.mode == "canary" and canary.canary_since is not None
    assert repo.running_experiment(acme) == canary
    ended = repo.end_experiment(acme, exp.id, "rolled_back", reason="refusals", evidence={"n": 1})
    assert ended is not None and ended.state == "rolled_back" and ended.evidence == {"n": 1}
    # Compare and set: a second rollback (another process) changes nothing.
    assert repo.end_experiment(acme, exp.id, "promoted") is None
    assert repo.experiment(acme, exp.id).state == "rolled_back"
    assert repo.running_experiment(acme) is None
    with pytest.raises(NotFound):
        repo.experiment(acme, other.id)
    with pytest.raises(NotFound):
        repo.end_experiment(acme, other.id, "stopped")


def test_shadow_pairs_and_reports(catalog: Catalog) -> None:
    repo, acme = catalog.traces, tid(catalog, "acme")
    served = record(acme, 1, experiment_id="e1")
    shadow = record(acme, 2, arm="shadow", experiment_id="e1", parent_id=served.id, refused=True)
    repo.add([served, shadow, record(acme, 4, arm="shadow", experiment_id="e1", parent_id="gone")])
    pairs = repo.shadow_pairs(acme, "e1")
    assert [(a.id, b.id) for a, b in pairs] == [(served.id, shadow.id)]
    assert repo.latest_report(acme) is None
    repo.save_report(acme, {"checks": [], "n": 1}, alerts=0)
    second = repo.save_report(acme, {"checks": [], "n": 2}, alerts=2)
    latest = repo.latest_report(acme)
    assert latest is not None and latest.id == second.id and latest.alerts == 2
    assert repo.latest_report(tid(catalog, "globex")) is None


class Flaky(TraceRepository):
    """The real repository, whose catalog is down for the first ``failures`` writes."""

    def __init__(self, catalog: Catalog, failures: int) -> None:
        super().__init__(catalog)
        self.failures = failures

    def add(self, records: Any) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("catalog unavailable: the server closed the connection")
        return super().add(records)


def capture(tenant: str, n: int) -> Capture:
    p = Passage(1, f"chunk-{n}", "doc-1", 1, "Doc", "The answer is here.", 0.8)

    class Stack:  # what a trace reads of a QA stack
        class retriever:  # noqa: N801
            @staticmethod
            def to_dict() -> dict[str, Any]:
                return {"mode": "hybrid"}

        generator = retriever

    return Capture(
        served=Served(
            f"10000000-0000-0000-0000-{n:012d}", tenant, "key:abc", "ask", None, "production"
        ),
        qa=Stack(),  # type: ignore[arg-type]
        question=f"What is answer {n}?",
        standalone=f"What is answer {n}?",
        flt=SearchFilter(tenant_id=tenant),
        top_k=None,
        search=SearchResult([p], {"total": 5.0}),
        created_at=utcnow(),
        latency_ms=12.0,
        answer=Answer("The answer is here. [1]", []),
        draft="The answer is here. [1]",
        used=[p],
    )


def test_the_writer_batches_retries_and_drops_when_full(catalog: Catalog) -> None:
    acme = tid(catalog, "acme")
    seen: list[int] = []
    writer = TraceWriter(
        Flaky(catalog, failures=2),
        environment=Environment,
        count_tokens=lambda text: len(text.split()),
        queue_size=1000,
        batch_size=50,
        listeners=[lambda records: seen.append(len(records))],
    )
    try:
        assert all(writer.record(capture(acme, n)) for n in range(120))
        assert writer.flush(30)
        assert len(list(catalog.traces.iterate(acme, TraceFilter()))) == 120
        assert sum(seen) == 120 and max(seen) <= 50
        one = catalog.traces.get(acme, capture(acme, 7).served.id)
        assert one.data["tokens"] == {"input": 8, "output": 5} and one.citations_dropped == 1
        done: list[str] = []
        writer.call(lambda: done.append("checked"))  # after the traces queued before it
        assert writer.flush(10) and done == ["checked"]
    finally:
        writer.close()
    tiny = TraceWriter(
        catalog.traces, environment=Environment, count_tokens=len, queue_size=1, batch_size=1
    )
    try:
        results = [tiny.record(capture(acme, 500 + n)) for n in range(200)]
        assert not all(results)  # the queue was full at some point: dropped, never waited for
        assert tiny.flush(30)
    finally:
        tiny.close()


def test_the_writer_gathers_a_while_into_one_transaction_and_a_flush_cuts_it_short(
    catalog: Catalog,
) -> None:
    acme = tid(catalog, "acme")
    seen: list[int] = []
    writer = TraceWriter(
        catalog.traces,
        environment=Environment,
        count_tokens=len,
        batch_size=100,
        linger_s=30.0,
        listeners=[lambda records: seen.append(len(records))],
    )
    try:
        for n in range(12):
            assert writer.record(capture(acme, 900 + n))
        time.sleep(0.3)
        assert seen == []  # still gathering
        started = time.monotonic()
        assert writer.flush(10)
        assert time.monotonic() - started < 5  # the flush did not wait out the 30 s
        assert seen == [12]  # one transaction for the twelve
        assert len(list(catalog.traces.iterate(acme, TraceFilter()))) == 12
    finally:
        writer.close()


def test_the_0010_migration_downgrades_and_upgrades(catalog: Catalog) -> None:
    round_trip(catalog, "0010", TABLES)
