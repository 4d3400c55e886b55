"""The document-processing steps of ingestion, configured once from settings.

Pure transformations: bytes → chunk records → vector points / version graph. The pipeline
moves their results between the stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import ids
from core.domain import ChunkRecord, Document, Version
from core.metrics import INGEST_STAGE
from core.settings import ChunkingSettings, Settings
from ingestion.chunking import ChunkerConfig, chunk
from ingestion.limits import Deadline, ParsePool, cap_chunks, within_token_cap
from ingestion.parsing import OcrOptions, ParseLimits
from ingestion.sanitize import addressed_to_assistant
from stores.graph import GraphChunk, GraphEntity, VersionGraph
from stores.vectors import VectorPoint
from textmodels.models import EMBED_BATCH, TextModels
from textmodels.sentences import Span, sentence_spans

Progress = Callable[[str, float], None]


def chunker_config(chunking: ChunkingSettings) -> ChunkerConfig:
    """The chunker a configuration's chunking settings describe (its ``to_dict`` is part of
    a release and of every chunk id)."""
    return ChunkerConfig(
        max_tokens=chunking.max_tokens,
        overlap_tokens=chunking.overlap_tokens,
        min_section_tokens=chunking.min_section_tokens,
    )


@dataclass(frozen=True)
class Prepared:
    """A parsed and chunked version, with the title the document gives itself (if any)."""

    chunks: list[ChunkRecord]
    title: str | None
    # What the user should know about how the document was read (replaced bytes, hidden text
    # not indexed, chunks over a cap, passages addressed to an assistant).
    warnings: list[str] = field(default_factory=list)


class Indexer:
    """Parse → chunk → (embed + sparse) and (entities), with one configuration's parameters
    and text models."""

    def __init__(self, settings: Settings, models: TextModels | None = None) -> None:
        self.settings = settings
        self.models = models or TextModels(settings)
        ocr = settings.ocr
        self.limits = ParseLimits(
            max_pages=settings.parsing.max_pages,
            max_chars=settings.parsing.max_chars,
            ocr=OcrOptions(ocr.languages, ocr.page_s, ocr.max_pixels) if ocr.enabled else None,
        )
        self.chunker = chunker_config(settings.chunking)
        self.chunker_fingerprint = ids.fingerprint(self.chunker.to_dict())
        # Parsing runs in child processes under GEDRAG_LIMITS__PARSE_S; chunking and embedding
        # check deadlines; closing stops all three (SIGTERM).
        self.parser = ParsePool(settings.limits, self.limits)
        self.stopping = threading.Event()

    def close(self) -> None:
        """Stop: parse children are killed, running deadlines raise ``Interrupted``."""
        self.stopping.set()
        self.parser.close()

    def deadline(self, seconds: float, what: str, setting: str) -> Deadline:
        return Deadline(seconds, what=what, setting=setting, stop=self.stopping)

    def to_dict(self) -> dict[str, Any]:
        """The ingestion half of a pipeline release."""
        return {"chunker": self.chunker.to_dict(), **self.models.to_dict()}

    def prepare(
        self, data: bytes, version: Version, tenant_id: str, progress: Progress
    ) -> list[ChunkRecord]:
        """Parse and chunk one version; :class:`IngestionError` when the document is bad."""
        return self.parse_and_chunk(data, version, tenant_id, progress).chunks

    def parse_and_chunk(
        self,
        data: bytes,
        version: Version,
        tenant_id: str,
        progress: Progress,
        *,
        chunk_room: int | None = None,
    ) -> Prepared:
        """:meth:`prepare`, also returning the document's own title (metadata or first
        heading) and the warnings its reading raised. Parsing runs in a child process within
        GEDRAG_LIMITS__PARSE_S, chunking within CHUNK_S; chunks beyond MAX_CHUNKS, MAX_TOKENS
        or ``chunk_room`` (what the tenant's daily quota leaves) are left out, with a
        warning."""
        limits = self.settings.limits
        with INGEST_STAGE.labels("parse").time():
            parsed = self.parser.parse(
                data, media_type=version.media_type, filename=version.filename
            )
        progress("chunking", 0.3)
        elements, cut = within_token_cap(parsed.elements, limits.max_tokens)
        deadline = self.deadline(limits.chunk_s, "chunking", "GEDRAG_LIMITS__CHUNK_S")
        with INGEST_STAGE.labels("chunk").time():
            drafts = chunk(
                elements,
                config=self.chunker,
                count_tokens=deadline.counting(self.models.embedder.count_tokens),
            )
        chunks = [
            ChunkRecord(
                id=ids.chunk_id(
                    version.document_id, version.sha256, self.chunker_fingerprint, d.ordinal
                ),
                tenant_id=tenant_id,
                document_id=version.document_id,
                version_id=version.id,
                ordinal=d.ordinal,
                text=d.text,
                section_path=d.section_path,
                page_start=d.page_start,
                page_end=d.page_end,
                language=d.language,
                token_count=d.token_count,
            )
            for d in drafts
        ]
        capped = cap_chunks(chunks, limits, tenant_room=chunk_room)
        warnings = [*parsed.warnings, *([capped.warning] if capped.warning else [])]
        if cut and capped.warning is None:
            warnings.append(
                f"indexed up to a limit: the text beyond what max_tokens={limits.max_tokens} "
                "(GEDRAG_LIMITS__MAX_TOKENS) can hold was left out"
            )
        flagged = sum(1 for c in capped.chunks if addressed_to_assistant(c.text))
        if flagged:
            warnings.append(
                f"{flagged} passage(s) address an AI assistant (ignore previous "
                "instructions, a note to the assistant...): flagged suspicious, never given "
                "as an answer"
            )
        return Prepared(capped.chunks, parsed.title, warnings)

    def term_points(
        self, chunks: Sequence[ChunkRecord], doc: Document, version: Version
    ) -> list[VectorPoint]:
        """The chunks as the first stage of progressive indexing stores them: sparse vectors
        and payload, no dense or sentence vector yet (``dense_pending``: fusion scores them on
        the signals they have). No model call: a version is findable by its words within a
        second of being chunked; :meth:`vector_points` completes the same ids later."""
        return [self._point(c, doc, version, dense=[], sentences=[], pending=True) for c in chunks]

    def vector_points(
        self, chunks: Sequence[ChunkRecord], doc: Document, version: Version, progress: Progress
    ) -> list[VectorPoint]:
        """Dense, sentence and sparse vectors with the payload that retrieval filters and
        cites."""
        points: list[VectorPoint] = []
        limits = self.settings.limits
        deadline = self.deadline(limits.embed_s, "embedding", "GEDRAG_LIMITS__EMBED_S")
        for start in range(0, len(chunks), EMBED_BATCH):
            deadline.check()
            batch = chunks[start : start + EMBED_BATCH]
            spans = [self.spans_of(c.text) for c in batch]
            pooled = self.models.batcher.embed_spans([c.text for c in batch], spans)
            for c, (vector, sentence_vectors) in zip(batch, pooled, strict=True):
                points.append(self._point(c, doc, version, vector, sentence_vectors))
            progress("embedding", 0.5 + 0.45 * min(1.0, (start + len(batch)) / len(chunks)))
        return points

    def _point(
        self,
        c: ChunkRecord,
        doc: Document,
        version: Version,
        dense: list[float],
        sentences: list[list[float]],
        *,
        pending: bool = False,
    ) -> VectorPoint:
        sparse = self.models.sparse.encode_document(c.text, c.language)
        payload = self.payload(c, doc, version)
        if pending:
            payload["dense_pending"] = True
        return VectorPoint(
            id=c.id,
            dense=dense,
            sparse_indices=sparse.indices,
            sparse_values=sparse.values,
            payload=payload,
            sentences=sentences,
        )

    def spans_of(self, text: str) -> list[Span]:
        """Where a chunk's sentences lie, to pool their vectors (none when they are off)."""
        return sentence_spans(text) if self.models.sentence_vectors else []

    def payload(self, c: ChunkRecord, doc: Document, version: Version) -> dict[str, Any]:
        """What retrieval filters on and cites; ``sentence_terms``: the sparse term ids of each
        sentence, for term matching within a sentence (with the sentence vectors)."""
        return {
            "tenant_id": c.tenant_id,
            "collection": doc.collection,
            "document_id": c.document_id,
            "version_id": c.version_id,
            "version": version.number,
            "chunk_id": c.id,
            "ordinal": c.ordinal,
            "title": doc.title,
            "tags": doc.tags,
            "metadata": doc.metadata,
            "uploaded_at": doc.created_at.timestamp(),
            "section_path": list(c.section_path),
            "page_start": c.page_start,
            "page_end": c.page_end,
            "language": c.language,
            "model_id": self.models.embedder.model_id,
            "text": c.text,
            # Addresses an assistant: retrieval shows the flag; answers never say the text.
            "suspicious": addressed_to_assistant(c.text),
            **(
                {"sentence_terms": self.models.sparse.sentence_terms(c.text, c.language)}
                if self.models.sentence_vectors
                else {}
            ),
        }

    def version_graph(
        self, chunks: Sequence[ChunkRecord], doc: Document, version: Version
    ) -> VersionGraph:
        entities: dict[str, GraphEntity] = {}
        graph_chunks: list[GraphChunk] = []
        limits = self.settings.limits
        deadline = self.deadline(limits.embed_s, "entity extraction", "GEDRAG_LIMITS__EMBED_S")
        for i, c in enumerate(chunks):
            if i % EMBED_BATCH == 0:
                deadline.check()
            found = self.models.extractor.extract(c.text, c.language)
            for e in found:
                entities.setdefault(e.key, GraphEntity(key=e.key, name=e.name, kind=e.kind))
            graph_chunks.append(
                GraphChunk(id=c.id, ordinal=c.ordinal, entity_keys=tuple(e.key for e in found))
            )
        return VersionGraph(
            tenant_id=doc.tenant_id,
            document_id=doc.id,
            version_id=version.id,
            title=doc.title,
            chunks=graph_chunks,
            entities=list(entities.values()),
        )
