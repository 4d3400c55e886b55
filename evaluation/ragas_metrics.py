"""RAGAS scoring, with RAGAS's own metric classes (ragas 0.4.3).

Always (no LLM): non-LLM context precision (with reference contexts) and recall, ID-based
context precision and recall, non-LLM string similarity, semantic similarity (gedrag's own
embedding model, passed to RAGAS as its embeddings), ROUGE-L.
With a judge endpoint (``GEDRAG_EVAL__JUDGE_URL`` + ``_MODEL``, OpenAI-compatible, e.g. vLLM):
faithfulness, answer relevancy and LLM context precision (with reference).
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

from textmodels.embedding import Embedder

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # no telemetry: gedrag runs offline
log = logging.getLogger(__name__)

NON_LLM = (
    "non_llm_context_precision_with_reference",
    "non_llm_context_recall",
    "id_based_context_precision",
    "id_based_context_recall",
    "non_llm_string_similarity",
    "semantic_similarity",
    "rouge_score",
)
LLM_JUDGED = ("faithfulness", "answer_relevancy", "llm_context_precision_with_reference")


@dataclass(frozen=True)
class Sample:
    question: str
    response: str
    reference: str
    retrieved_contexts: list[str]
    reference_contexts: list[str]
    retrieved_ids: list[str]
    reference_ids: list[str]


@dataclass(frozen=True)
class Judge:
    """An OpenAI-compatible endpoint (vLLM) that RAGAS's LLM-judged metrics call."""

    url: str
    model: str
    api_key: str | None
    timeout_s: float
    http_client: Any = None  # an httpx.AsyncClient; tests pass one with a MockTransport
    max_retries: int = 2  # the OpenAI client's retries on 5xx / connection errors


def _embeddings(embedder: Embedder) -> Any:
    from ragas.embeddings.base import BaseRagasEmbedding

    class GedragEmbeddings(BaseRagasEmbedding):
        """gedrag's embedding model as RAGAS embeddings (offline)."""

        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return [float(x) for x in embedder.embed([text])[0]]

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.embed_text(text)

    return GedragEmbeddings()


class RagasScorer:
    """Scores samples with RAGAS metrics; one instance per run (metrics are built once)."""

    def __init__(self, embedder: Embedder, judge: Judge | None = None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the single-turn metric classes warn of their move
            from ragas.metrics import (
                IDBasedContextPrecision,
                IDBasedContextRecall,
                NonLLMContextPrecisionWithReference,
                NonLLMContextRecall,
                NonLLMStringSimilarity,
                RougeScore,
                SemanticSimilarity,
            )
        self.embeddings = _embeddings(embedder)
        self.metrics: dict[str, Any] = {
            "non_llm_context_precision_with_reference": NonLLMContextPrecisionWithReference(),
            "non_llm_context_recall": NonLLMContextRecall(),
            "id_based_context_precision": IDBasedContextPrecision(),
            "id_based_context_recall": IDBasedContextRecall(),
            "non_llm_string_similarity": NonLLMStringSimilarity(),
            "semantic_similarity": SemanticSimilarity(embeddings=self.embeddings),
            "rouge_score": RougeScore(),
        }
        self.judged: dict[str, Any] = {}
        self.judge_errors = 0
        if judge is not None:
            self.judged = _judged_metrics(judge, self.embeddings)

    @property
    def names(self) -> list[str]:
        return [*self.metrics, *self.judged]

    def score(self, sample: Sample) -> dict[str, float | None]:
        """Every metric for one answerable question; ``None`` where a metric has no input."""
        return asyncio.run(self._score(sample))

    async def _score(self, s: Sample) -> dict[str, float | None]:
        from ragas.dataset_schema import SingleTurnSample

        row = SingleTurnSample(
            user_input=s.question,
            response=s.response,
            reference=s.reference,
            retrieved_contexts=s.retrieved_contexts,
            reference_contexts=s.reference_contexts or None,
            retrieved_context_ids=list[str | int](s.retrieved_ids),
            reference_context_ids=list[str | int](s.reference_ids) or None,
        )
        out: dict[str, float | None] = {}
        for name, metric in self.metrics.items():
            needs_refs = name.startswith(("non_llm_context", "id_based"))
            lacking = (name.startswith("non_llm_context") and not s.reference_contexts) or (
                name.startswith("id_based") and not s.reference_ids
            )
            if needs_refs and (lacking or not s.retrieved_contexts):
                out[name] = None if lacking else 0.0
                continue
            out[name] = round(float(await metric.single_turn_ascore(row)), 6)
        for name, metric in self.judged.items():
            try:
                out[name] = await _judged_score(name, metric, s)
            except Exception as exc:  # a judge that errs or writes invalid JSON: no score
                self.judge_errors += 1
                log.warning("judge failed", extra={"metric": name, "error": str(exc)[:300]})
                out[name] = None
        return out


def _judged_metrics(judge: Judge, embeddings: Any) -> dict[str, Any]:
    from openai import AsyncOpenAI
    from ragas.llms import llm_factory
    from ragas.metrics.collections import (
        AnswerRelevancy,
        ContextPrecisionWithReference,
        Faithfulness,
    )

    client = AsyncOpenAI(
        base_url=judge.url,
        api_key=judge.api_key or "none",
        timeout=judge.timeout_s,
        http_client=judge.http_client,
        max_retries=judge.max_retries,
    )
    llm = llm_factory(judge.model, client=client)
    return {
        "faithfulness": Faithfulness(llm=llm),
        "answer_relevancy": AnswerRelevancy(llm=llm, embeddings=embeddings),
        "llm_context_precision_with_reference": ContextPrecisionWithReference(llm=llm),
    }


async def _judged_score(name: str, metric: Any, s: Sample) -> float | None:
    if name == "faithfulness":
        if not s.retrieved_contexts:
            return None
        result = await metric.ascore(
            user_input=s.question, response=s.response, retrieved_contexts=s.retrieved_contexts
        )
    elif name == "answer_relevancy":
        result = await metric.ascore(user_input=s.question, response=s.response)
    else:
        if not s.retrieved_contexts:
            return None
        result = await metric.ascore(
            user_input=s.question, reference=s.reference, retrieved_contexts=s.retrieved_contexts
        )
    value = getattr(result, "value", result)
    return None if value is None else round(float(value), 6)
