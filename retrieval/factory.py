"""Build the question-answering stack named by the settings (one place, typed choices)."""

from __future__ import annotations

from typing import assert_never

from core.settings import Settings
from retrieval.extractive import ExtractiveGenerator
from retrieval.generation import Generator
from retrieval.rerank import CrossEncoderReranker
from retrieval.search import Retriever
from retrieval.service import QA
from runtime import Runtime
from textmodels.embedding import Embedder


def generator(settings: Settings, embedder: Embedder | None = None) -> Generator:
    """The answer writer; ``embedder`` lets the extractive one score sentences by meaning."""
    g = settings.generation
    backend = g.backend
    match backend:
        case "extractive":
            return ExtractiveGenerator(
                min_coverage=g.min_coverage,
                embedder=embedder,
                min_similarity=g.min_similarity,
                meaning_weight=g.meaning_weight,
                type_weight=g.type_weight,
            )
        case "vllm":
            from retrieval.vllm import VLLMGenerator

            url, model, key = settings.llm.endpoint()
            return VLLMGenerator(
                url,
                model,
                api_key=key,
                timeout_s=settings.llm.timeout_s,
                max_retries=g.max_retries,
                max_tokens=g.max_tokens,
                context_token_budget=g.context_token_budget,
                temperature=g.temperature,
            )
        case _:
            assert_never(backend)


def qa(rt: Runtime, settings: Settings | None = None) -> QA:
    """The QA stack over ``rt``'s stores; ``settings`` may replace the query-time half
    (retrieval, generation), e.g. with the production release's."""
    settings = settings or rt.settings
    reranker = (
        CrossEncoderReranker(settings.retrieval.reranker, device=settings.embedding.device)
        if settings.retrieval.reranker
        else None
    )
    retriever = Retriever(
        versions=rt.catalog.versions,
        vectors=rt.vectors,
        graph=rt.graph,
        embedder=rt.models.embedder,
        sparse=rt.models.sparse,
        extractor=rt.models.extractor,
        config=settings.retrieval,
        reranker=reranker,
    )
    return QA(retriever, generator(settings, rt.models.embedder))
