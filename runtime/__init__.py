"""The objects a process needs, built once from the settings: the catalog, the original files,
the vector and graph stores, and the text models.

The catalog opens at once (migrations run on start); the vector and graph stores open on first
use, so a process that never touches them (the API of a Redis deployment uploading files)
does not lock an embedded vector folder that a worker process needs.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from core.settings import DEFAULT_EMBEDDING_MODEL, Settings
from stores import factory
from stores.blobs import BlobStore
from stores.catalog import Catalog, migration_state
from stores.catalog.models import VersionRow
from stores.graph import GraphStore
from stores.vectors import VectorStore
from textmodels.models import TextModels

log = logging.getLogger(__name__)

# Installations made before the embedding model was recorded all embedded with it (it was the
# default of every earlier release, and an explicit setting is always kept).
EARLIER_DEFAULT_MODEL = "all-MiniLM-L6-v2"


def serving_model(settings: Settings, catalog: Catalog) -> Settings:
    """The settings with the embedding model this installation serves with.

    A model set explicitly (``GEDRAG_EMBEDDING__MODEL``) is used as it is. Otherwise the model
    is the installation's own, recorded in the catalog: at its first start, the default of the
    release that made it (a catalog that already holds documents but no record was made by an
    earlier release, with :data:`EARLIER_DEFAULT_MODEL`), and afterwards the one a `gedrag
    migrate reembed --model X --switch` moved it to. So a new release's default reaches new
    installations only: an existing one keeps answering from its vectors until it re-embeds.
    """
    if "model" in settings.embedding.model_fields_set:
        return settings
    with catalog.session() as s:
        made = s.execute(select(VersionRow.id).limit(1)).first() is not None
    first = EARLIER_DEFAULT_MODEL if made else DEFAULT_EMBEDDING_MODEL
    recorded = migration_state.put_state_once(
        catalog, migration_state.EMBEDDING_MODEL, {"model": first, "previous": None}
    )
    model = str(recorded.get("model") or first)
    if model != settings.embedding.model:
        log.info(
            "embedding model %s (this installation's; the release's default is %s: "
            "`gedrag migrate reembed --model %s --switch` moves it)",
            model,
            settings.embedding.model,
            settings.embedding.model,
        )
    return settings.with_embedding_model(model)


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
        return cls(serving_model(settings, catalog), catalog)

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
