"""A sync service over real embedded stores for the sources' tests: SQLite (or PostgreSQL)
catalog, the local vector folder, the relational graph, the hashing embedder (the tests are
about syncing, not models), and an executor: in-process (every job done when ``submit``
returns) or Celery's with no worker consuming (jobs stay queued, as behind a busy worker)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.domain import DocumentFilter, DocumentStatus
from core.errors import NotFound
from core.settings import (
    ApiSettings,
    BrokerSettings,
    CatalogSettings,
    LimitsSettings,
    Settings,
    SourcesSettings,
)
from ingestion.service import Executor, IngestionService, InProcessExecutor
from runtime import Runtime
from sources.config import FolderConfig, SourceSpec
from sources.sync import RoundSummary, SyncService
from stores.catalog import Catalog
from stores.catalog.sources import SourceItem, SourceRecord
from tests.support.words_embedder import WordsEmbedder
from textmodels.models import TextModels


@dataclass
class Lab:
    rt: Runtime
    service: IngestionService
    executor: Executor
    sync: SyncService
    tenant: str
    inbox: Path  # a folder under GEDRAG_SOURCES__FOLDER_ROOTS

    def put(self, name: str, data: bytes, root: Path | None = None) -> Path:
        path = (root or self.inbox) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def folder(self, name: str = "scans", path: Path | None = None, **spec: Any) -> SourceRecord:
        connection = FolderConfig(path=str(path or self.inbox), **spec.pop("connection", {}))
        values: dict[str, Any] = {"name": name, "collection": "scans"} | spec
        return self.sync.add(self.tenant, SourceSpec(connection=connection, **values))

    def run(self, source: SourceRecord, tenant: str | None = None) -> RoundSummary:
        return self.sync.sync(tenant or self.tenant, source.id)

    def items(self, source: SourceRecord) -> dict[str, SourceItem]:
        page = self.rt.catalog.sources.page(source.tenant_id, source.id, limit=200)
        return {i.key: i for i in page.items}

    def documents(self, tenant: str | None = None) -> dict[str, Any]:
        page = self.rt.catalog.documents.page(
            tenant or self.tenant, DocumentFilter(), cursor=None, limit=200
        )
        return {d.id: d for d in page.items}

    def indexed(self, document_id: str, tenant: str | None = None) -> bool:
        """Ready, with vectors and graph chunks."""
        t = tenant or self.tenant
        doc = self.rt.catalog.documents.get(t, document_id)
        return (
            doc.status == DocumentStatus.READY
            and self.rt.vectors.count(t, document_id) > 0
            and bool(self.rt.graph.chunk_ids(t, document_id))
        )

    def gone(self, document_id: str, tenant: str | None = None) -> bool:
        """Nowhere: not in the catalog, no vector, no graph chunk."""
        t = tenant or self.tenant
        try:
            self.rt.catalog.documents.get(t, document_id)
            return False
        except NotFound:
            pass
        return self.rt.vectors.count(t, document_id) == 0 and not self.rt.graph.chunk_ids(
            t, document_id
        )

    def jobs(self) -> int:
        import sqlalchemy as sa

        with self.rt.catalog.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one())


def make_lab(
    root: Path,
    *,
    catalog_url: str | None = None,
    executor: str = "inprocess",
    max_upload_bytes: int = 10_000_000,
    limits: LimitsSettings | None = None,
    **sources: Any,
) -> Lab:
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        data_dir=root / "var",
        catalog=CatalogSettings(url=catalog_url),
        broker=BrokerSettings(queue=f"test-{uuid.uuid4().hex[:8]}"),
        api=ApiSettings(max_upload_bytes=max_upload_bytes),
        limits=limits or LimitsSettings(),
        sources=SourcesSettings(
            **({"folder_roots": [root], "settle_s": 0, "backoff_base_s": 30} | sources)
        ),
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    rt = Runtime(settings, catalog, TextModels(settings, embedder=WordsEmbedder()))
    service = IngestionService(rt)
    chosen: Executor
    if executor == "inprocess":
        chosen = InProcessExecutor(service)
    else:  # Celery with nobody consuming: jobs stay queued
        from ingestion.celery_app import GedragCelery
        from ingestion.tasks import CeleryExecutor

        chosen = CeleryExecutor(GedragCelery(settings, rt))
    tenant = catalog.tenants.create(f"t-{uuid.uuid4().hex[:8]}").id
    return Lab(rt, service, chosen, SyncService(service, chosen), tenant, inbox)
