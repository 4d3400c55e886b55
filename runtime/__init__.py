"""The objects a process needs, built once from the settings: the catalog, the original files,
the vector and graph stores, and the text models.

The catalog opens at once (migrations run on start); the vector and graph stores open on first
use, so a process that never touches them (the API of a Redis deployment uploading files)
does not lock an embedded vector folder that a worker process needs.
"""

from __future__ import annotations

import threading

from core.settings import Settings
from stores import factory
from stores.blobs import BlobStore
from stores.catalog import Catalog
from stores.graph import GraphStore
from stores.vectors import VectorStore
from textmodels.models import TextModels


class Runtime:
    def __init__(self, settings: Settings, catalog: Catalog, models: TextModels | None = None):
        self.settings = settings
        self.catalog = catalog
        self.blobs = BlobStore(settings.blob_dir)
        self.models = models or TextModels(settings)
        self._lock = threading.Lock()
        self._vectors: VectorStore | None = None
        self._graph: GraphStore | None = None

    @classmethod
    def build(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        """Open the catalog named by the settings; migrations run here, on start."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(settings.catalog_url, echo=settings.catalog.echo)
        if migrate:
            catalog.migrate()
        return cls(settings, catalog)

    # Locked, not cached_property: two worker threads must never open the embedded vector
    # folder twice (the second open would fail on its lock).
    @property
    def vectors(self) -> VectorStore:
        with self._lock:
            if self._vectors is None:
                self._vectors = factory.vector_store(self.settings, self.models.embedder.model_id)
            return self._vectors

    @property
    def graph(self) -> GraphStore:
        with self._lock:
            if self._graph is None:
                self._graph = factory.graph_store(self.settings, self.catalog)
            return self._graph

    def close(self) -> None:
        with self._lock:
            if self._vectors is not None:
                self._vectors.close()
            if self._graph is not None:
                self._graph.close()
        self.catalog.dispose()
