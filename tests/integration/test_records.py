"""Records lifecycle over real embedded stores (the catalog on SQLite and PostgreSQL, the local
vector folder, the relational graph, original files on disk) and the hashing embedder: the
trash, legal holds, purges with certificates (resumed after a crash and after a store outage),
retention with its confirmation rule, subject-access requests, and ``gedrag migrate verify``
finding no trace of a purged document (and finding one that was left)."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core import ids, media
from core.domain import DocumentFilter, DocumentStatus, JobKind, JobState
from core.errors import Conflict, Held, NotFound, StoreUnavailable
from core.records import Anchor, CertificateState, Disposal, Period, Selector
from core.settings import BrokerSettings, CatalogSettings, Settings
from infra.migrate.verify import verify
from ingestion.records import RecordsService
from ingestion.service import Incoming, IngestionService, InProcessExecutor
from runtime import Runtime
from stores.catalog import Catalog
from stores.catalog.models import utcnow
from tests.support.words_embedder import WordsEmbedder
from textmodels.models import TextModels

pytestmark = pytest.mark.integration

INVOICE = b"""# Invoice INV-2024-0042

ACME Industries invoices the city of Lyon 1,250 EUR for the maintenance of March 2024.
Contact: Jean Dupont, jean.dupont@acme.fr, who signed the order on March 3, 2024.
"""
CV = b"""# Curriculum vitae

Marie Curie, physicist. Nobel prizes in 1903 and 1911. Worked in Paris at the Sorbonne.
"""
MEMO = b"""# Memo

The board of Globex met on June 5, 2024 and approved the budget of the Lyon office.
"""


@dataclass
class Env:
    rt: Runtime
    service: IngestionService
    records: RecordsService
    tenant: str

    def upload(
        self,
        data: bytes,
        name: str,
        *,
        collection: str = "docs",
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        f = Incoming(io.BytesIO(data), name, media.MARKDOWN, ids.sha256_hex(data), len(data))
        reg = self.service.register(
            self.tenant, collection, f, title=name, tags=tags or [], metadata=metadata or {}
        )
        assert reg.job is not None
        self.records.executor.submit(reg.job)
        done = self.rt.catalog.jobs.load(reg.job.id)
        assert (done.state, done.error or "") == (JobState.SUCCEEDED, "")
        return reg.document.id

    def searchable(self, doc_id: str) -> bool:
        return doc_id in self.rt.catalog.versions.active(self.tenant, [doc_id])

    def listed(self) -> set[str]:
        page = self.rt.catalog.documents.page(self.tenant, DocumentFilter(), cursor=None, limit=200)
        return {d.id for d in page.items}

    def traces(self, doc_id: str) -> dict[str, int]:
        """What every store holds of the document."""
        rt = self.rt
        graph = rt.graph.counts(self.tenant, doc_id)
        # A purge job is the record of the purge: it names the id, nothing more.
        purges = rt.catalog.jobs.page(self.tenant, kind=JobKind.DELETE, document_id=doc_id).items
        return {
            "catalog": sum(rt.catalog.records.catalog_counts(doc_id).values()) - len(purges),
            "points": rt.vectors.count(self.tenant, doc_id),
            "graph": graph.chunks
            + graph.mentions
            + len(rt.graph.export_document(self.tenant, doc_id)),
        }


def make_env(root: Path, catalog_url: str | None = None) -> Runtime:
    settings = Settings(
        data_dir=root / "var",
        catalog=CatalogSettings(url=catalog_url),
        broker=BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}"),
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    return Runtime(settings, catalog, TextModels(settings, embedder=WordsEmbedder()))


@pytest.fixture
def env(tmp_path: Path, catalog_url: str) -> Iterator[Env]:
    rt = make_env(tmp_path, catalog_url)
    service = IngestionService(rt)
    records = RecordsService(service, InProcessExecutor(service))
    tenant = rt.catalog.tenants.create("acme").id
    yield Env(rt, service, records, tenant)
    rt.close()


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Env]:
    """SQLite only: for the tests whose point is not the catalog engine."""
    rt = make_env(tmp_path)
    service = IngestionService(rt)
    records = RecordsService(service, InProcessExecutor(service))
    tenant = rt.catalog.tenants.create("acme").id
    yield Env(rt, service, records, tenant)
    rt.close()


def test_trash_hides_at_once_keeps_the_data_restores_and_a_purge_certifies(env: Env) -> None:
    invoice = env.upload(INVOICE, "invoice.md", tags=["invoice"])
    memo = env.upload(MEMO, "memo.md")
    before = env.traces(invoice)
    assert before["points"] > 0 and before["graph"] > 0

    entry = env.records.trash(env.tenant, invoice, actor="key:alice")
    assert entry.purge_after - entry.trashed_at == timedelta(days=30)
    assert not env.searchable(invoice) and env.searchable(memo)
    assert env.listed() == {memo}
    assert env.traces(invoice) == {**before, "catalog": before["catalog"] + 1}  # + the entry
    with pytest.raises(Conflict, match="in the trash"):
        env.rt.catalog.documents.update(env.tenant, invoice, title="x")
    assert [e.document_id for e in env.records.records.trashed(env.tenant)] == [invoice]
    with pytest.raises(Conflict, match="in the trash"):  # the same bytes again: restore it
        env.upload(INVOICE, "again.md")

    doc = env.records.restore(env.tenant, invoice, actor="key:alice")
    assert doc.status == DocumentStatus.READY and env.searchable(invoice)
    assert env.listed() == {invoice, memo}

    env.records.trash(env.tenant, invoice, actor="key:alice")
    sha = env.rt.catalog.documents.get(env.tenant, invoice).versions[0].sha256
    previews = env.rt.settings.data_dir / "previews" / env.tenant
    previews.mkdir(parents=True)
    (previews / f"{invoice}-p1.png").write_bytes(b"png")
    (previews / f"{memo}-p1.png").write_bytes(b"png")
    job, cert = env.records.purge_from_trash(env.tenant, invoice, actor="key:admin")
    assert env.rt.catalog.jobs.load(job.id).state == JobState.SUCCEEDED
    done = env.rt.catalog.records.certificate(env.tenant, cert.id)
    assert done.state == CertificateState.COMPLETE
    assert done.stores["vectors"]["points"] == {"before": before["points"], "after": 0}
    assert done.stores["graph"]["chunks"]["before"] > 0
    assert done.stores["graph"]["chunks"]["after"] == 0
    assert done.stores["blobs"]["originals"] == {"before": 1, "after": 0}
    assert done.stores["previews"]["files"] == {"before": 1, "after": 0}
    assert [p.name for p in previews.iterdir()] == [f"{memo}-p1.png"]
    assert done.stores["catalog"]["documents"] == {"before": 1, "after": 0}
    assert all(pair["after"] == 0 for pair in done.stores["catalog"].values())
    assert done.originals == [
        {
            "version": 1,
            "sha256": sha,
            "size_bytes": len(INVOICE),
            "media_type": media.MARKDOWN,
            "removed": True,
        }
    ]
    assert "pending" not in done.detail  # the entity keys kept while it ran are gone
    assert env.traces(invoice) == {"catalog": 0, "points": 0, "graph": 0}
    assert not env.rt.blobs.path(env.tenant, sha).exists()
    with pytest.raises(NotFound):
        env.records.restore(env.tenant, invoice, actor="key:alice")
    report = verify(env.rt)
    assert report.ok, report.to_dict()
    actions = [(e.action, e.outcome) for e in env.records.records.audit_trail(env.tenant)]
    assert actions[:3] == [("purge", "done"), ("purge", "requested"), ("trash", "done")]


def test_a_shared_original_stays_and_the_certificate_says_so(lite: Env) -> None:
    first = lite.upload(INVOICE, "invoice.md", collection="a")
    second = lite.upload(INVOICE, "invoice.md", collection="b")  # same bytes elsewhere
    _, cert = lite.records.purge(lite.tenant, first, actor="cli", reason="test")
    done = lite.rt.catalog.records.certificate(lite.tenant, cert.id)
    assert done.originals[0]["removed"] is False
    assert done.stores["blobs"]["originals"] == {"before": 0, "after": 0}
    sha = done.originals[0]["sha256"]
    assert lite.rt.blobs.read(lite.tenant, sha) == INVOICE  # the other document still reads it
    assert lite.searchable(second)


def test_a_legal_hold_refuses_every_destructive_action_until_released(lite: Env) -> None:
    invoice = lite.upload(
        INVOICE, "invoice.md", tags=["invoice"], metadata={"correspondent": "ACME"}
    )
    memo = lite.upload(MEMO, "memo.md")
    hold = lite.records.place_hold(
        lite.tenant,
        name="ACME dispute",
        reason="case 2024-17",
        actor="key:lawyer",
        selector=Selector(metadata={"correspondent": "ACME"}),
    )
    assert [d.id for d in lite.records.held_documents(lite.tenant, hold)] == [invoice]

    with pytest.raises(Held, match="ACME dispute") as refused:
        lite.records.trash(lite.tenant, invoice, actor="key:bob")
    assert refused.value.holds == ["ACME dispute"]
    with pytest.raises(Held):
        lite.records.purge(lite.tenant, invoice, actor="key:admin", reason="x")
    v2 = INVOICE + b"\nAmended.\n"
    with pytest.raises(Held):
        lite.service.register_version(
            lite.tenant,
            invoice,
            Incoming(io.BytesIO(v2), "invoice.md", media.MARKDOWN, ids.sha256_hex(v2), len(v2)),
        )
    lite.records.save_policy(
        lite.tenant,
        name="all 1 day",
        selector=Selector(collection="docs"),
        period=Period(days=1),
        anchor=Anchor.UPLOAD,
        action=Disposal.PURGE,
        confirm=True,
        actor="key:admin",
    )
    report = lite.records.run_daily(at=utcnow() + timedelta(days=2))
    assert (report.retention_purged, report.refused_held) == (1, 1)  # the memo went, not it
    assert lite.traces(memo)["catalog"] == 0
    assert lite.searchable(invoice) and lite.traces(invoice)["points"] > 0
    refusals = [e for e in lite.records.records.audit_trail(lite.tenant) if e.outcome == "refused"]
    assert {e.action for e in refusals} == {"delete", "purge", "new version", "retention.purge"}
    assert all(e.detail["holds"] == ["ACME dispute"] for e in refusals)

    lite.records.release_hold(lite.tenant, hold.id, actor="key:admin")
    lite.records.trash(lite.tenant, invoice, actor="key:bob")
    assert not lite.searchable(invoice)


def test_a_hold_placed_after_the_purge_was_requested_wins(lite: Env) -> None:
    invoice = lite.upload(INVOICE, "invoice.md")
    lite.records.trash(lite.tenant, invoice, actor="key:bob")
    job, cert = lite.rt.catalog.records.request_purge(
        lite.tenant, invoice, by="key:admin", reason="x"
    )
    lite.records.place_hold(
        lite.tenant,
        name="late hold",
        reason="",
        actor="key:lawyer",
        selector=Selector(document_ids=(invoice,)),
    )
    lite.records.executor.submit(job)
    failed = lite.rt.catalog.jobs.load(job.id)
    assert failed.state == JobState.FAILED and "late hold" in (failed.error or "")
    assert (
        lite.rt.catalog.records.certificate(lite.tenant, cert.id).state == CertificateState.REFUSED
    )
    assert lite.rt.catalog.documents.get(lite.tenant, invoice).status == DocumentStatus.TRASHED
    assert lite.traces(invoice)["points"] > 0  # nothing was removed


class Crash(BaseException):
    """The process dying at this point (not an Exception: nothing catches it)."""


class Failing:
    """A store whose ``method`` raises ``error`` while ``armed``; everything else passes."""

    def __init__(self, inner: Any, method: str, error: BaseException) -> None:
        self._inner, self._method, self._error, self.armed = inner, method, error, True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.armed:
                raise self._error
            return attr(*args, **kwargs)

        return call


def test_a_purge_killed_halfway_resumes_and_certifies_the_first_counts(lite: Env) -> None:
    invoice = lite.upload(INVOICE, "invoice.md")
    before = lite.traces(invoice)
    real = lite.rt.graph
    lite.rt._graph = Failing(real, "delete_document", Crash())
    with pytest.raises(Crash):
        lite.records.purge(lite.tenant, invoice, actor="key:admin", reason="test")
    assert lite.rt.vectors.count(lite.tenant, invoice) == 0  # vectors went, then it died
    (cert,) = lite.rt.catalog.records.certificates(lite.tenant, document_id=invoice)
    assert cert.state == CertificateState.REMOVING
    assert not lite.searchable(invoice)

    lite.rt._graph = real  # a new process: what the catalog says is all it knows
    report = lite.records.run_daily(tenant_id=lite.tenant, lost_after=timedelta(0))
    assert report.resumed == 1
    done = lite.rt.catalog.records.certificate(lite.tenant, cert.id)
    assert done.state == CertificateState.COMPLETE
    assert done.stores["vectors"]["points"] == {"before": before["points"], "after": 0}
    assert done.stores["graph"]["chunks"]["after"] == 0
    assert lite.traces(invoice) == {"catalog": 0, "points": 0, "graph": 0}
    assert verify(lite.rt).ok


def test_a_store_down_leaves_the_purge_resumable_and_the_daily_run_completes_it(
    lite: Env,
) -> None:
    invoice = lite.upload(INVOICE, "invoice.md")
    real = lite.rt.vectors
    down = Failing(real, "delete", StoreUnavailable("vector store unreachable"))
    lite.rt._vectors = down
    lite.records.trash(lite.tenant, invoice, actor="key:bob")
    with pytest.raises(StoreUnavailable):
        lite.records.purge_from_trash(lite.tenant, invoice, actor="key:admin")
    assert lite.rt.catalog.documents.get(lite.tenant, invoice).status == DocumentStatus.DELETING
    again = lite.records.run_daily(tenant_id=lite.tenant, lost_after=timedelta(0))  # still down
    assert (again.resumed, again.failed) == (1, 1)
    assert lite.rt.catalog.documents.get(lite.tenant, invoice).status == DocumentStatus.DELETING
    down.armed = False
    lite.records.run_daily(tenant_id=lite.tenant, lost_after=timedelta(0))
    assert lite.traces(invoice) == {"catalog": 0, "points": 0, "graph": 0}
    (cert,) = lite.rt.catalog.records.certificates(lite.tenant, document_id=invoice)
    assert (
        cert.state == CertificateState.COMPLETE and cert.stores["vectors"]["points"]["before"] > 0
    )


def test_retention_waits_for_confirmation_and_the_longest_policy_keeps(lite: Env) -> None:
    old = lite.upload(INVOICE, "invoice.md", tags=["invoice"], metadata={"date": "2010-01-15"})
    cv = lite.upload(CV, "cv.md", metadata={"type": "cv"})
    memo = lite.upload(MEMO, "memo.md", metadata={"date": "2010-06-01"})
    change = lite.records.save_policy(
        lite.tenant,
        name="invoices 10 years",
        selector=Selector(type="invoice"),
        period=Period(years=10),
        anchor=Anchor.DOCUMENT_DATE,
        action=Disposal.PURGE,
        confirm=False,
        actor="key:admin",
    )
    assert change.pending and [d.document_id for d in change.would_dispose] == [old]
    assert lite.records.run_daily(tenant_id=lite.tenant).pending_confirmation == 1
    assert lite.searchable(old)  # nothing disposed of without a confirmation

    # A CV policy counted from the upload: nothing due yet, so it applies at once.
    cvs = lite.records.save_policy(
        lite.tenant,
        name="CVs 2 years",
        selector=Selector(type="cv"),
        period=Period(years=2),
        anchor=Anchor.UPLOAD,
        action=Disposal.TRASH,
        confirm=False,
        actor="key:admin",
    )
    assert not cvs.pending and cvs.would_dispose == []
    due = lite.records.preview(lite.tenant, within_days=365 * 2 + 1)
    assert {(d.document_id, d.confirmed) for d in due} == {(old, False), (cv, True)}

    # A longer policy on the same invoice keeps it.
    lite.records.save_policy(
        lite.tenant,
        name="ledger 30 years",
        selector=Selector(tags=("invoice",)),
        period=Period(years=30),
        anchor=Anchor.DOCUMENT_DATE,
        action=Disposal.PURGE,
        confirm=False,
        actor="key:admin",
    )
    assert lite.records.preview(lite.tenant) == []
    lite.records.delete_policy(
        lite.tenant,
        next(
            p.id for p in lite.records.records.policies(lite.tenant) if p.name == "ledger 30 years"
        ),
        actor="key:admin",
    )
    lite.records.confirm_policy(lite.tenant, change.policy.id, actor="key:admin")
    report = lite.records.run_daily(tenant_id=lite.tenant)
    assert report.retention_purged == 1
    assert lite.traces(old) == {"catalog": 0, "points": 0, "graph": 0}
    (cert,) = lite.rt.catalog.records.certificates(lite.tenant, document_id=old)
    assert "invoices 10 years" in cert.reason
    assert lite.searchable(memo) and lite.searchable(cv)

    later = lite.records.run_daily(tenant_id=lite.tenant, at=utcnow() + timedelta(days=731))
    assert later.retention_trashed == 1  # the CV went to the trash after two years
    assert lite.rt.catalog.documents.get(lite.tenant, cv).status == DocumentStatus.TRASHED
    purged = lite.records.run_daily(tenant_id=lite.tenant, at=utcnow() + timedelta(days=731 + 31))
    assert purged.trash_purged == 1 and lite.traces(cv)["catalog"] == 0


def test_subject_access_finds_exports_redacts_and_erases(lite: Env) -> None:
    invoice = lite.upload(INVOICE, "invoice.md")
    cv = lite.upload(CV, "cv.md")
    memo = lite.upload(MEMO, "memo.md", metadata={"owner": "Jean DUPONT"})

    report = lite.records.subjects.find(
        lite.tenant, ["Jean Dupont", "jean.dupont@acme.fr"], actor="key:dpo"
    )
    found = {d.document_id: d for d in report.documents}
    assert set(found) == {invoice, memo}
    assert found[memo].fields == ["metadata.owner"] and found[memo].chunks == []
    (chunk,) = found[invoice].chunks
    assert "Jean Dupont" in chunk.text
    assert {"graph", "sparse", "text"} <= set(chunk.matched_by)
    # accents and case do not hide anyone
    assert {
        d.document_id
        for d in lite.records.subjects.find(lite.tenant, ["MARIE CURIÉ"], actor="key:dpo").documents
    } == {cv}
    audit = lite.records.records.audit_trail(lite.tenant, action="subject.find")[0]
    assert "Jean" not in json.dumps(audit.detail)  # the trail counts, never names

    with zipfile.ZipFile(io.BytesIO(lite.records.subjects.export(report, actor="key:dpo"))) as z:
        names = set(z.namelist())
        assert "report.json" in names
        assert z.read(f"originals/{invoice}/v1-invoice.md") == INVOICE
        assert json.loads(z.read("report.json"))["chunk_count"] == 1

    redacted = lite.records.subjects.redact(report, actor="key:dpo")
    by_doc = {r["document_id"]: r for r in redacted}
    assert by_doc[invoice]["replaced"] == 2 and by_doc[invoice]["version"] == 2
    doc = lite.rt.catalog.documents.get(lite.tenant, invoice)
    assert [v.number for v in doc.versions] == [2] and doc.active_version == 2
    text = lite.rt.blobs.read(lite.tenant, doc.versions[0].sha256).decode()
    assert "Dupont" not in text and "dupont@" not in text and text.count("[REDACTED]") == 2
    assert not lite.rt.blobs.path(lite.tenant, ids.sha256_hex(INVOICE)).exists()
    cert = lite.rt.catalog.records.certificate(lite.tenant, by_doc[invoice]["certificate_id"])
    assert cert.kind == "redaction" and cert.stores["vectors"]["points"]["after"] == 0
    again = lite.records.subjects.find(lite.tenant, ["Jean Dupont"], actor="key:dpo")
    assert {d.document_id for d in again.documents} == {memo}  # metadata is not redacted

    erased = lite.records.subjects.erase(again, actor="key:dpo")
    assert [c["document_id"] for c in erased.certificates] == [memo] and erased.refused == []
    assert lite.traces(memo) == {"catalog": 0, "points": 0, "graph": 0}
    assert lite.records.subjects.find(lite.tenant, ["Jean Dupont"], actor="key:dpo").documents == []
    assert verify(lite.rt).ok


def test_verify_names_a_trace_a_purge_left(lite: Env) -> None:
    invoice = lite.upload(INVOICE, "invoice.md")
    points = lite.rt.vectors.scroll_points(limit=1000)[0]
    kept = [p for p in points if p.payload.get("document_id") == invoice]
    _, cert = lite.records.purge(lite.tenant, invoice, actor="key:admin", reason="test")
    assert verify(lite.rt).ok
    lite.rt.vectors.upsert(kept)  # a lost delete, as in Open WebUI #26438
    sha = ids.sha256_hex(INVOICE)
    lite.rt.blobs.put(lite.tenant, sha, io.BytesIO(INVOICE))
    report = verify(lite.rt)
    (drift,) = report.drift
    assert drift.document_id == invoice and drift.orphan
    assert drift.stores == {"vectors", "blobs"}
    assert any(f"certificate {cert.id}" in p for p in drift.problems)

    # The same bytes uploaded again after the purge are a new document, not a trace.
    lite.rt.vectors.delete(lite.tenant, invoice)
    again = lite.upload(INVOICE, "invoice.md")
    assert again == invoice and verify(lite.rt).ok


def test_the_0007_migration_downgrades_and_upgrades(catalog_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from stores.catalog.database import MIGRATIONS

    catalog = Catalog(catalog_url)
    catalog.migrate()
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    tables = {
        "records_trash",
        "records_holds",
        "records_policies",
        "records_certificates",
        "records_audit",
        "records_settings",
    }
    try:
        with catalog.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        assert not tables & set(sa.inspect(catalog.engine).get_table_names())
        catalog.migrate()
        assert tables <= set(sa.inspect(catalog.engine).get_table_names())
    finally:
        catalog.dispose()


def test_celery_beat_schedules_the_daily_run_and_its_purges_run_on_the_workers(
    lite: Env,
) -> None:
    """The beat entry, then the task itself on a real (embedded) Celery worker: the trash
    period ended, the purge goes through the delete task, certified."""
    from celery.schedules import crontab

    from ingestion.celery_app import GedragCelery, start_embedded_worker
    from ingestion.tasks import RECORDS_DAILY

    app = GedragCelery(lite.rt.settings, lite.rt)
    entry = app.conf.beat_schedule["gedrag-records-daily"]
    assert entry["task"] == RECORDS_DAILY
    assert entry["schedule"] == crontab(hour=2, minute=30)
    invoice = lite.upload(INVOICE, "invoice.md")
    lite.records.set_trash_days(lite.tenant, 0, actor="key:admin")
    lite.records.trash(lite.tenant, invoice, actor="key:bob")
    worker = start_embedded_worker(app)
    try:
        app.send_task(RECORDS_DAILY)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lite.traces(invoice)["catalog"]:
            time.sleep(0.2)
    finally:
        worker.stop(in_sighandler=False)
    assert lite.traces(invoice) == {"catalog": 0, "points": 0, "graph": 0}
    (cert,) = lite.rt.catalog.records.certificates(lite.tenant, document_id=invoice)
    assert cert.state == CertificateState.COMPLETE and cert.reason == "trash period ended"
