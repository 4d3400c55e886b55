"""The text models one pipeline configuration uses, built once from the settings.

Ingestion embeds, encodes and extracts chunks with them; retrieval runs the same ones over the
question, so both sides speak one vocabulary. The embedding model loads on first use (~7 s),
not when the object is built.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any, assert_never

from core.settings import Settings
from textmodels.embedding import (
    E5_NAMES,
    BatchingEmbedder,
    Embedder,
    SentenceTransformerEmbedder,
)
from textmodels.entities import EntityExtractor, RuleBasedEntityExtractor
from textmodels.sparse import SparseEncoder

# Chunks per model call when concurrent documents share calls.
EMBED_BATCH = 64


def make_extractor(settings: Settings) -> EntityExtractor:
    kind = settings.entities.extractor
    match kind:
        case "rules":
            return RuleBasedEntityExtractor()
        case "llm":
            from textmodels.llm_entities import LLMEntityExtractor

            url, model, key = settings.llm.endpoint()
            return LLMEntityExtractor(url, model, api_key=key, timeout_s=settings.llm.timeout_s)
        case _:
            assert_never(kind)


def make_embedder(settings: Settings) -> Embedder:
    e = settings.embedding
    if e.model in E5_NAMES:
        from textmodels.e5 import E5Embedder

        return E5Embedder(
            e.models_dir or settings.data_dir / "models",
            device=e.device,
            batch_size=e.batch_size,
            precision=e.precision,
        )
    return SentenceTransformerEmbedder(
        e.model, device=e.device, batch_size=e.batch_size, precision=e.precision
    )


class TextModels:
    """Dense embedder, sparse encoder and entity extractor of one configuration.

    ``embedder`` / ``extractor`` replace the configured ones (tests, the evaluation's memo).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        extractor: EntityExtractor | None = None,
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        sp = settings.sparse
        self.sparse = SparseEncoder(k1=sp.k1, b=sp.b, avg_doc_length=sp.avg_doc_length)
        self.extractor = extractor or make_extractor(settings)
        self.sentence_vectors = settings.embedding.sentences
        self._batcher: BatchingEmbedder | None = None
        self._batcher_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._loaded = False

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder if self._embedder is not None else make_embedder(self.settings)

    def load(self) -> None:
        """Bring the embedding model's weights into memory now rather than at the first embed
        (~7 s): the API starts it in the background. Idempotent; a caller arriving while a load
        runs waits for it instead of loading a second copy."""
        with self._load_lock:
            if not self._loaded:
                self.embedder.embed(["gedrag"])
                self._loaded = True

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has finished."""
        return self._loaded

    @property
    def batcher(self) -> BatchingEmbedder:
        """The embedder of document chunks: concurrent documents share model calls (queries
        use ``embedder`` directly and never wait for a batch to form). One per models object."""
        with self._batcher_lock:
            if self._batcher is None:
                self._batcher = BatchingEmbedder(self.embedder, max_texts=EMBED_BATCH)
            return self._batcher

    def to_dict(self) -> dict[str, Any]:
        """The models' half of a pipeline release."""
        return {
            "embedder": {"model": self.embedder.model_id, "sentences": self.sentence_vectors},
            "sparse": self.sparse.to_dict(),
            "entities": self.extractor.to_dict(),
        }
