"""The objects a worker or the API needs, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings
from ingestion.indexing import Indexer
from stores.blobs import BlobStore
from stores.catalog import Catalog


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    blobs: BlobStore
    indexer: Indexer

    @classmethod
    def build(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        """Open every store named by the settings; migrations run here, on start."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(settings.catalog_url, echo=settings.catalog.echo)
        if migrate:
            catalog.migrate()
        return cls(
            settings=settings,
            catalog=catalog,
            blobs=BlobStore(settings.blob_dir),
            indexer=Indexer(settings),
        )

    def close(self) -> None:
        self.catalog.dispose()
