"""The document-processing steps of ingestion, configured once from settings."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from core.domain import Version
from core.settings import Settings
from ingestion.chunking import ChunkDraft, ChunkerConfig, chunk
from ingestion.embedding import Embedder, SentenceTransformerEmbedder
from ingestion.parsing import ParseLimits, parse

Progress = Callable[[str, float], None]


class Indexer:
    """Parse → chunk (→ embed and write, in the store tasks), with the settings' parameters."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self.limits = ParseLimits(
            max_pages=settings.parsing.max_pages, max_chars=settings.parsing.max_chars
        )
        self.chunker = ChunkerConfig(
            max_tokens=settings.chunking.max_tokens,
            overlap_tokens=settings.chunking.overlap_tokens,
            min_section_tokens=settings.chunking.min_section_tokens,
        )

    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        e = self.settings.embedding
        return SentenceTransformerEmbedder(e.model, device=e.device, batch_size=e.batch_size)

    def prepare(self, data: bytes, version: Version, progress: Progress) -> list[ChunkDraft]:
        """Parse and chunk one version; :class:`IngestionError` when the document is bad."""
        elements = parse(
            data, media_type=version.media_type, filename=version.filename, limits=self.limits
        )
        progress("chunking", 0.3)
        return chunk(elements, config=self.chunker, count_tokens=self.embedder.count_tokens)
