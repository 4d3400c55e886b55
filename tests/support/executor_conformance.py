"""Executor conformance: what every ``ingestion.service.Executor`` owes the ingestion service.

A mixin in the manner of haystack's ``haystack/testing/document_store.py``: a subclass named
``Test...`` provides the ``ingestion`` fixture, an :class:`Ingestion` (a runtime on fresh
embedded stores, the service, the executor under test); every test here then submits jobs
through the executor and checks every store through its Protocols: the catalog, the original
files, the vector store and the graph. Executors may run jobs later (Celery workers), so the
suite waits on the catalog's job state, the one place job state lives.

``tests/integration/test_executor_conformance.py`` runs it on ``InProcessExecutor`` and on
``CeleryExecutor`` with the worker embedded in the process (``memory://`` broker).
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from core import ids, media
from core.domain import Document, DocumentStatus, Job, JobState
from core.errors import NotFound
from core.settings import BrokerSettings, Settings
from ingestion.service import Executor, Incoming, IngestionService
from runtime import Runtime
from stores.catalog import Catalog
from stores.vectors import SearchFilter
from tests.support.words_embedder import WordsEmbedder
from textmodels.models import TextModels

T = TypeVar("T")
TIMEOUT_S = 60  # a job here takes ~1 s; a loaded 2-core machine was seen 10x slower

CONTRACT = b"""# Maintenance contract

The maintenance contract CTR-2024-0042 binds ACME Industries and the city of Lyon.
It ends on March 3, 2026. Invoices are payable within thirty days.

## Prices

The yearly price is 1,250 EUR. ACME Industries reviews it every January with the city of Lyon.
"""
CONTRACT_V2 = CONTRACT.replace(b"March 3, 2026", b"June 30, 2027") + (
    b"\n## Renewal\n\nThe city of Lyon may renew the contract once, for three years.\n"
)
# A PDF header and then garbage: the parser refuses it, naming the format.
BROKEN_PDF = b"%PDF-1.7\n" + b"\x00garbage" * 100


def runtime(root: Path) -> Runtime:
    """Fresh embedded stores under ``root`` (SQLite catalog, local vector folder, relational
    graph) and the hashing embedder: the suite is about the executor, not the models."""
    settings = Settings(
        data_dir=root / "var", broker=BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}")
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    return Runtime(settings, catalog, TextModels(settings, embedder=WordsEmbedder()))


def eventually(check: Callable[[], T | None], what: str, timeout: float = TIMEOUT_S) -> T:
    """``check()`` once it returns something other than ``None`` (or fail naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@dataclass
class Ingestion:
    """What the suite drives: the service whose steps run, and the executor under test."""

    service: IngestionService
    executor: Executor

    @property
    def rt(self) -> Runtime:
        return self.service.rt

    def wait(self, job: Job) -> Job:
        """The job once finished, as the catalog records it."""

        def finished() -> Job | None:
            now = self.rt.catalog.jobs.load(job.id)
            return now if now.state.finished else None

        return eventually(finished, f"job {job.id} ({job.kind}) finished")

    def upload(
        self, tenant_id: str, data: bytes, name: str = "contract.md", media_type: str = ""
    ) -> tuple[Document, Job]:
        f = Incoming(
            io.BytesIO(data),
            name,
            media_type or media.MARKDOWN,
            ids.sha256_hex(data),
            len(data),
        )
        reg = self.service.register(
            tenant_id, "contracts", f, title="Contract", tags=["legal"], metadata={"year": 2024}
        )
        assert reg.job is not None
        self.executor.submit(reg.job)
        return reg.document, reg.job

    def new_version(self, tenant_id: str, document_id: str, data: bytes) -> Job:
        f = Incoming(
            io.BytesIO(data), "contract.md", media.MARKDOWN, ids.sha256_hex(data), len(data)
        )
        reg = self.service.register_version(tenant_id, document_id, f)
        assert reg.job is not None
        self.executor.submit(reg.job)
        return reg.job

    def chunk_ids(self, version_id: str) -> set[str]:
        return {c.id for c in self.rt.catalog.chunks.of_version(version_id)}

    def assert_indexed(self, tenant_id: str, document_id: str, version_id: str) -> set[str]:
        """The version's chunks are in the catalog, the vector store and the graph; no other
        chunk of the document is anywhere. Returns the chunk ids."""
        chunks = self.chunk_ids(version_id)
        assert chunks
        assert self.rt.vectors.point_ids(tenant_id, document_id) == chunks
        assert self.rt.vectors.missing(sorted(chunks)) == set()
        assert set(self.rt.vectors.point_versions(tenant_id, document_id).values()) == {version_id}
        assert self.rt.graph.chunk_ids(tenant_id, document_id) == chunks
        assert self.rt.graph.counts(tenant_id, document_id, version_id).chunks == len(chunks)
        return chunks


class ExecutorConformance:
    """Subclasses provide ``ingestion``."""

    @pytest.fixture
    def ingestion(self, tmp_path: Path) -> Ingestion:
        raise NotImplementedError("a subclass provides the executor under test")

    @pytest.fixture
    def tenant(self, ingestion: Ingestion) -> str:
        return ingestion.rt.catalog.tenants.create(f"t-{uuid.uuid4().hex[:8]}").id

    def test_an_ingest_job_makes_the_document_ready_in_every_store(
        self, ingestion: Ingestion, tenant: str
    ) -> None:
        doc, job = ingestion.upload(tenant, CONTRACT)
        done = ingestion.wait(job)
        assert (done.state, done.error or "") == (JobState.SUCCEEDED, "")
        got = ingestion.rt.catalog.documents.get(tenant, doc.id)
        assert (got.status, got.active_version) == (DocumentStatus.READY, 1)
        version = got.versions[0]
        chunks = ingestion.assert_indexed(tenant, doc.id, version.id)
        assert ingestion.rt.blobs.read(tenant, version.sha256) == CONTRACT
        assert "acme industries" in ingestion.rt.graph.entity_keys(tenant)
        hits = ingestion.rt.vectors.fetch(sorted(chunks), SearchFilter(tenant_id=tenant))
        assert {h.payload["title"] for h in hits} == {"Contract"}
        assert {tuple(h.payload["tags"]) for h in hits} == {("legal",)}
        # Both stages ran: every point has its dense vector, none is still pending.
        assert all(h.dense and "dense_pending" not in h.payload for h in hits)
        assert ingestion.rt.vectors.fetch(sorted(chunks), SearchFilter(tenant_id="other")) == []

    def test_a_new_version_replaces_the_old_one_in_every_store(
        self, ingestion: Ingestion, tenant: str
    ) -> None:
        doc, job = ingestion.upload(tenant, CONTRACT)
        assert ingestion.wait(job).state == JobState.SUCCEEDED
        first = ingestion.rt.catalog.documents.get(tenant, doc.id).versions[0]
        old = ingestion.chunk_ids(first.id)
        done = ingestion.wait(ingestion.new_version(tenant, doc.id, CONTRACT_V2))
        assert (done.state, done.error or "") == (JobState.SUCCEEDED, "")
        got = ingestion.rt.catalog.documents.get(tenant, doc.id)
        assert (got.status, got.active_version) == (DocumentStatus.READY, 2)
        second = next(v for v in got.versions if v.number == 2)
        new = ingestion.assert_indexed(tenant, doc.id, second.id)
        assert not old & new  # other content, other chunk ids
        assert ingestion.chunk_ids(first.id) == set()  # the superseded chunks are dropped

    def test_a_delete_job_removes_the_document_from_every_store(
        self, ingestion: Ingestion, tenant: str
    ) -> None:
        doc, job = ingestion.upload(tenant, CONTRACT)
        assert ingestion.wait(job).state == JobState.SUCCEEDED
        version = ingestion.rt.catalog.documents.get(tenant, doc.id).versions[0]
        kept, kept_job = ingestion.upload(tenant, CONTRACT_V2, "other.md")  # must survive
        assert ingestion.wait(kept_job).state == JobState.SUCCEEDED
        chunks = ingestion.chunk_ids(version.id)
        delete = ingestion.rt.catalog.documents.request_delete(tenant, doc.id)
        ingestion.executor.submit(delete)
        done = ingestion.wait(delete)
        assert (done.state, done.error or "") == (JobState.SUCCEEDED, "")
        with pytest.raises(NotFound):
            ingestion.rt.catalog.documents.get(tenant, doc.id)
        assert ingestion.rt.catalog.chunks.ids_by_document([doc.id]) == {doc.id: {}}
        assert ingestion.rt.vectors.point_ids(tenant, doc.id) == set()
        assert ingestion.rt.vectors.missing(sorted(chunks)) == chunks
        assert ingestion.rt.graph.chunk_ids(tenant, doc.id) == set()
        assert ingestion.rt.graph.counts(tenant, doc.id).chunks == 0
        assert (tenant, version.sha256) not in ingestion.rt.blobs.all()
        survivor = ingestion.rt.catalog.documents.get(tenant, kept.id)
        ingestion.assert_indexed(tenant, kept.id, survivor.versions[0].id)

    def test_sync_copies_title_tags_and_metadata_into_the_vectors(
        self, ingestion: Ingestion, tenant: str
    ) -> None:
        doc, job = ingestion.upload(tenant, CONTRACT)
        assert ingestion.wait(job).state == JobState.SUCCEEDED
        version = ingestion.rt.catalog.documents.get(tenant, doc.id).versions[0]
        chunks = sorted(ingestion.chunk_ids(version.id))
        ingestion.rt.catalog.documents.update(
            tenant, doc.id, title="Renamed", tags=["archived"], metadata={"year": 2025}
        )
        ingestion.executor.sync(tenant, doc.id)
        archived = SearchFilter(tenant_id=tenant, tags=["archived"])

        def synced() -> bool | None:
            hits = ingestion.rt.vectors.fetch(chunks, archived)
            return True if len(hits) == len(chunks) else None

        eventually(synced, "payloads synced")
        for hit in ingestion.rt.vectors.fetch(chunks, SearchFilter(tenant_id=tenant)):
            assert hit.payload["title"] == "Renamed"
            assert hit.payload["tags"] == ["archived"]
            assert hit.payload["metadata"] == {"year": 2025}
        assert (
            ingestion.rt.vectors.fetch(chunks, SearchFilter(tenant_id=tenant, tags=["legal"])) == []
        )

    def test_a_failed_parse_fails_the_job_with_its_cause_and_indexes_nothing(
        self, ingestion: Ingestion, tenant: str
    ) -> None:
        doc, job = ingestion.upload(tenant, BROKEN_PDF, "report.pdf", media.PDF)
        done = ingestion.wait(job)
        assert done.state == JobState.FAILED
        assert done.error and "PDF" in done.error, done.error
        got = ingestion.rt.catalog.documents.get(tenant, doc.id)
        assert (got.status, got.active_version) == (DocumentStatus.FAILED, None)
        assert ingestion.chunk_ids(got.versions[0].id) == set()
        assert ingestion.rt.vectors.point_ids(tenant, doc.id) == set()
        assert ingestion.rt.graph.chunk_ids(tenant, doc.id) == set()
        assert ingestion.rt.graph.entity_keys(tenant) == set()
