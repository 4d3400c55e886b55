"""Retention over a tenant of 10,000 documents evaluates in 10 s or less (issue #20), on the
catalog engines gedrag supports. The documents are catalog rows inserted directly (nothing is
embedded: retention reads the catalog only); the dispositions the daily run decides are
recorded as queued purge jobs, which the executor here collects rather than runs (purges
themselves are measured in tests/integration/test_records.py)."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import ids
from core.domain import DocumentStatus, Job, JobKind, JobState
from core.records import Anchor, Disposal, Period, Selector
from ingestion.records import RecordsService
from ingestion.service import IngestionService
from stores.catalog.models import (
    CollectionRow,
    DocumentRow,
    JobRow,
    MetaRow,
    TagRow,
    VersionRow,
    utcnow,
)
from tests.integration.test_records import make_env

pytestmark = pytest.mark.integration

DOCUMENTS = 10_000
BUDGET_S = 10.0


class Collecting:
    """An executor that keeps the jobs submitted (the purges are not the subject here)."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> None:
        self.jobs.append(job)

    def sync(self, tenant_id: str, document_id: str) -> None:
        return None


def insert_tenant(engine: sa.Engine, tenant_id: str, rng: random.Random) -> dict[str, int]:
    """10,000 documents: invoices dated 2005-2024, CVs uploaded 0-4 years ago, contracts, in
    two collections, a correspondent on some; one version each."""
    now = utcnow()
    colls = {name: ids.collection_id(tenant_id, name) for name in ("finance", "hr")}
    docs: list[dict[str, object]] = []
    versions: list[dict[str, object]] = []
    tags: list[dict[str, object]] = []
    meta: list[dict[str, object]] = []
    kinds = {"invoice": 0, "cv": 0, "contract": 0}
    for i in range(DOCUMENTS):
        kind = rng.choices(["invoice", "cv", "contract"], weights=[6, 2, 2])[0]
        kinds[kind] += 1
        doc_id = ids.stable_uuid("scale", tenant_id, str(i))
        created = now - timedelta(days=rng.randrange(0, 4 * 365))
        metadata: dict[str, object] = {"type": kind}
        if kind == "invoice":
            metadata["date"] = f"{rng.randrange(2005, 2025)}-{rng.randrange(1, 13):02d}-15"
        if rng.random() < 0.1:
            metadata["correspondent"] = rng.choice(["ACME", "Globex", "Initech"])
        docs.append(
            {
                "id": doc_id,
                "tenant_id": tenant_id,
                "collection_id": colls["hr" if kind == "cv" else "finance"],
                "title": f"{kind} {i}",
                "status": DocumentStatus.READY,
                "current_version": 1,
                "active_version": 1,
                "meta": metadata,
                "created_at": created,
                "updated_at": created,
            }
        )
        versions.append(
            {
                "id": ids.version_id(doc_id, 1),
                "document_id": doc_id,
                "number": 1,
                "sha256": ids.sha256_hex(doc_id.encode()),
                "size_bytes": 1000,
                "media_type": "application/pdf",
                "filename": f"{i}.pdf",
                "status": DocumentStatus.READY,
                "created_at": created,
            }
        )
        tags.append({"document_id": doc_id, "tag": kind})
        meta.extend(
            {"document_id": doc_id, "key": k, "value": ids.canonical_json(v)}
            for k, v in metadata.items()
        )
    with engine.begin() as conn:
        conn.execute(
            sa.insert(CollectionRow),
            [
                {"id": c, "tenant_id": tenant_id, "name": n, "description": ""}
                for n, c in colls.items()
            ],
        )
        for table, rows in (
            (DocumentRow, docs),
            (VersionRow, versions),
            (TagRow, tags),
            (MetaRow, meta),
        ):
            for start in range(0, len(rows), 2000):
                conn.execute(sa.insert(table), rows[start : start + 2000])
    return kinds


def test_retention_over_10000_documents_evaluates_within_10_s(
    tmp_path: Path, catalog_url: str
) -> None:
    rt = make_env(tmp_path, catalog_url)
    try:
        tenant = rt.catalog.tenants.create("bigco").id
        insert_tenant(rt.catalog.engine, tenant, random.Random(7))
        executor = Collecting()
        records = RecordsService(IngestionService(rt), executor)
        policies = [
            ("invoices 10 years", Selector(type="invoice"), Period(years=10), Anchor.DOCUMENT_DATE),
            ("CVs 2 years", Selector(type="cv"), Period(years=2), Anchor.UPLOAD),
            (
                "finance 30 years",
                Selector(collection="finance", tags=("contract",)),
                Period(years=30),
                Anchor.UPLOAD,
            ),
        ]
        for name, selector, period, anchor in policies:
            records.save_policy(
                tenant,
                name=name,
                selector=selector,
                period=period,
                anchor=anchor,
                action=Disposal.PURGE,
                confirm=True,
                actor="key:admin",
            )
        records.place_hold(
            tenant,
            name="ACME dispute",
            reason="",
            actor="key:lawyer",
            selector=Selector(metadata={"correspondent": "ACME"}),
        )

        started = time.perf_counter()
        due = records.preview(tenant)
        preview_s = time.perf_counter() - started
        held = [d for d in due if d.holds]
        assert len(due) > 1000 and held and all(d.confirmed for d in due)

        started = time.perf_counter()
        report = records.run_daily(tenant_id=tenant)
        daily_s = time.perf_counter() - started
        assert report.retention_purged == len(due) - len(held)
        assert report.refused_held == len(held)
        assert {j.kind for j in executor.jobs} == {JobKind.DELETE}
        with rt.catalog.engine.connect() as conn:
            queued = conn.execute(
                sa.select(sa.func.count())
                .select_from(JobRow)
                .where(JobRow.kind == JobKind.DELETE, JobRow.state == JobState.QUEUED)
            ).scalar_one()
        assert queued == report.retention_purged
        print(
            f"\n{rt.catalog.engine.dialect.name}: {DOCUMENTS} documents, preview {preview_s:.2f} s "
            f"({len(due)} due, {len(held)} held); daily run {daily_s:.2f} s "
            f"({report.retention_purged} purges requested, {report.refused_held} refused)"
        )
        assert preview_s <= BUDGET_S
        assert daily_s <= 6 * BUDGET_S  # ~one catalog transaction and audit row per disposal
    finally:
        rt.close()
