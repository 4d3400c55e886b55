"""Answer traces exported to an OpenTelemetry collector with the GenAI semantic conventions,
so that Langfuse, Arize Phoenix or any OTLP backend reads them.

One OpenTelemetry trace per gedrag trace, with the same id (the gedrag trace id's 128 bits):
a root span ``invoke_workflow gedrag.<route>`` (``gen_ai.operation.name=invoke_workflow``),
a ``retrieval <collection>`` span (``gen_ai.operation.name=retrieval``: the query, the
documents with their scores, each stage's milliseconds) and, for answers, a
``chat <model>`` span (``gen_ai.operation.name=chat``: the model, token usage, the input and
output messages). Spans carry the times the answer was served at; they are made by the
background writer, after the answer was sent.

With ``content=False`` no text leaves gedrag (no question, passage or answer): only ids,
scores, timings and counts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, set_span_in_context

from core.settings import MonitoringSettings
from stores.catalog.traces import TraceRecord

PROVIDER = "gedrag"


class _TraceIds(RandomIdGenerator):
    """Root spans take the id of the gedrag trace they export (set just before)."""

    def __init__(self) -> None:
        self.next_trace_id: int | None = None

    def generate_trace_id(self) -> int:
        if self.next_trace_id is not None:
            return self.next_trace_id
        return super().generate_trace_id()


def otel_trace_id(trace_id: str) -> int:
    """The 128-bit OpenTelemetry id of a gedrag trace (its UUID's bits)."""
    return uuid.UUID(trace_id).int or 1


class OtelExport:
    """Callable on a batch of stored traces (a listener of the writer). Not thread-safe: the
    one writer thread calls it."""

    def __init__(self, exporter: SpanExporter, *, content: bool = True, batch: bool = True):
        self.content = content
        self._ids = _TraceIds()
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": "gedrag"}), id_generator=self._ids
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("gedrag.monitoring")

    @classmethod
    def from_settings(cls, settings: MonitoringSettings) -> OtelExport | None:
        """An OTLP/HTTP export to ``otlp_endpoint``; ``None`` when none is set."""
        if not settings.otlp_endpoint:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        headers = {k: v.get_secret_value() for k, v in settings.otlp_headers.items()}
        return cls(
            OTLPSpanExporter(endpoint=settings.otlp_endpoint, headers=headers),
            content=settings.otlp_content,
        )

    def __call__(self, records: Sequence[TraceRecord]) -> None:
        for r in records:
            self._export(r)

    def shutdown(self) -> None:
        self._provider.shutdown()

    def _export(self, r: TraceRecord) -> None:
        d = r.data
        start = _ns(r.created_at)
        end = start + int(r.latency_ms * 1e6)
        retrieval_end = start + int(d.get("timings_ms", {}).get("total", 0.0) * 1e6)
        answer = d.get("answer")
        self._ids.next_trace_id = otel_trace_id(r.id)
        try:
            root = self._tracer.start_span(
                f"invoke_workflow gedrag.{r.route}",
                kind=SpanKind.SERVER,
                start_time=start,
                attributes=self._root_attributes(r),
            )
        finally:
            self._ids.next_trace_id = None
        context = set_span_in_context(root)
        retrieval = self._tracer.start_span(
            f"retrieval {d.get('replay', {}).get('collection') or 'gedrag'}",
            context=context,
            kind=SpanKind.INTERNAL,
            start_time=start,
            attributes=self._retrieval_attributes(r),
        )
        retrieval.end(end_time=max(start, retrieval_end))
        if answer is not None:
            generator = d.get("replay", {}).get("config", {}).get("generator", {})
            model = str(generator.get("model") or generator.get("name") or "extractive")
            chat = self._tracer.start_span(
                f"chat {model}",
                context=context,
                kind=SpanKind.CLIENT,
                start_time=max(start, retrieval_end),
                attributes=self._chat_attributes(r, model),
            )
            chat.end(end_time=end)
        root.end(end_time=end)

    def _root_attributes(self, r: TraceRecord) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": f"gedrag.{r.route}",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.conversation.id": r.id,
            "gedrag.trace_id": r.id,
            "gedrag.tenant_id": r.tenant_id,
            "gedrag.caller": r.caller,
            "gedrag.release_id": r.release_id or "",
            "gedrag.arm": r.arm,
            "gedrag.language": r.language,
            "gedrag.refused": r.refused,
            "gedrag.citations_dropped": r.citations_dropped,
        }
        if r.experiment_id:
            attrs["gedrag.experiment_id"] = r.experiment_id
        if r.parent_id:
            attrs["gedrag.parent_trace_id"] = r.parent_id
        return attrs

    def _retrieval_attributes(self, r: TraceRecord) -> dict[str, Any]:
        d = r.data
        passages = d.get("passages", [])
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.data_source.id": d.get("replay", {}).get("collection", ""),
            "gen_ai.request.top_k": int(d.get("top_k") or len(passages)),
            **{
                f"gedrag.stage_ms.{stage}": float(ms)
                for stage, ms in d.get("timings_ms", {}).items()
            },
        }
        if r.top_score is not None:
            attrs["gedrag.top_score"] = r.top_score
        documents = [
            {"id": p["chunk_id"], "score": p["score"], "document_id": p["document_id"]}
            for p in passages
        ]
        if self.content:
            attrs["gen_ai.retrieval.query.text"] = d.get("standalone_question") or r.question
            for doc, p in zip(documents, passages, strict=True):
                doc["content"] = p["text"]
        attrs["gen_ai.retrieval.documents"] = json.dumps(documents, ensure_ascii=False)
        return attrs

    def _chat_attributes(self, r: TraceRecord, model: str) -> dict[str, Any]:
        d = r.data
        tokens = d.get("tokens", {})
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.response.id": r.id,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.usage.input_tokens": int(tokens.get("input", 0)),
            "gen_ai.usage.output_tokens": int(tokens.get("output", 0)),
            "gedrag.grounded": bool(d["answer"]["grounded"]),
        }
        if self.content:
            messages = [*d.get("history", []), {"role": "user", "content": r.question}]
            attrs["gen_ai.input.messages"] = json.dumps(
                [
                    {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                    for m in messages
                ],
                ensure_ascii=False,
            )
            attrs["gen_ai.output.messages"] = json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": d["answer"]["text"]}],
                        "finish_reason": "stop",
                    }
                ],
                ensure_ascii=False,
            )
        return attrs


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1e9)
