"""Questions over the caller's documents: search, ask (optionally streamed), chat, and an
OpenAI-compatible chat endpoint so existing chat front ends can use gedrag."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from core.access import Caller as AuthCaller
from core.domain import Tenant
from core.errors import InvalidInput
from evaluation import service as evals
from monitoring.service import Answering, Monitor
from retrieval import factory
from retrieval.search import SearchResult
from retrieval.service import QA, Reply
from retrieval.types import Answer, Message
from runtime import Runtime
from serving import auth
from serving.api import ERRORS, current_tenant
from serving.schemas import (
    AskRequest,
    AskResponse,
    ChatMessage,
    ChatRequest,
    CitationPublic,
    PassagePublic,
    SearchFilters,
    SearchRequest,
    SearchResponse,
)
from sorting.fields import BUILTIN_FIELDS, parse_conditions
from stores.catalog.evaluation import EvalStore
from stores.catalog.traces import Route
from stores.vectors import SearchFilter

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", responses=ERRORS, tags=["questions"])
Caller = Annotated[Tenant, Depends(current_tenant)]
_qa_lock = threading.Lock()
# Stacks of non-production releases kept built (each holds only settings and shared models).
RELEASES_KEPT = 4


def current_qa(state: Any) -> QA:
    """Built once (the API's warm-up builds it at start, ``serving.warmup``), and rebuilt when
    another release is promoted: the production release's retrieval and generation settings
    apply without a restart. Production is re-read at most every
    ``GEDRAG_EVALUATION__RELEASE_CACHE_S`` seconds, at once after a promotion in this process."""
    rt: Runtime = state.runtime
    # A question asked while the warm-up loads the model waits for that load, rather than
    # loading a second copy of the weights beside it.
    rt.models.load()
    with _qa_lock:
        now = time.monotonic()
        checked = getattr(state, "release_checked_at", None)
        if (
            getattr(state, "qa", None) is None
            or checked is None
            or (now - checked >= rt.settings.evaluation.release_cache_s)
        ):
            production = EvalStore(rt.catalog).production_id()
            state.release_checked_at = now
            if getattr(state, "qa", None) is None or production != getattr(
                state, "qa_release", None
            ):
                state.qa = _build_qa(rt, production)
                state.qa_release = production
        built: QA = state.qa
        return built


def release_qa(state: Any, release_id: str | None) -> QA:
    """The stack of a given release (``model: gedrag@<release>``), else production's. Kept for
    the last :data:`RELEASES_KEPT` releases asked for."""
    if release_id is None or release_id == getattr(state, "qa_release", None):
        return current_qa(state)
    rt: Runtime = state.runtime
    rt.models.load()
    with _qa_lock:
        kept: OrderedDict[str, QA] | None = getattr(state, "release_qas", None)
        if kept is None:
            kept = state.release_qas = OrderedDict()
        if release_id not in kept:
            kept[release_id] = _build_qa(rt, release_id)
            while len(kept) > RELEASES_KEPT:
                kept.popitem(last=False)
        kept.move_to_end(release_id)
        return kept[release_id]


def _build_qa(rt: Runtime, production: str | None) -> QA:
    if production is None:
        return factory.qa(rt)
    release = evals.as_release(EvalStore(rt.catalog).get_release(production))
    if release.config["ingestion"]["embedding"]["model"] != rt.settings.embedding.model:
        log.warning(
            "production release indexes with another embedding model; serving keeps its own",
            extra={"release_id": production},
        )
    log.info("serving release", extra={"release_id": production})
    return factory.qa(rt, release.serving_overlay(rt.settings))


def caller_of(who: AuthCaller, hint: str | None = None) -> str:
    """Who asks, as a trace records it and a canary sticks to it: the authenticated caller
    (``user:alice``, ``service:portal``), followed by the end user a front end names for it
    (OpenAI's ``user`` or the ``X-Gedrag-User`` header: ``service:portal for user:bob``). The
    hint only ever follows the authenticated name, so no client passes itself off as another."""
    hint = (hint or "").strip()
    return f"{who.actor} for user:{hint[:100]}" if hint else who.actor


def answering(route: Route) -> Callable[[Request, Tenant], Answering]:
    """A dependency: the release that answers this caller (production, or the canary for the
    callers in its share) and the trace of what it serves (``monitoring.service``)."""

    def begin(request: Request, tenant: Caller) -> Answering:
        monitor: Monitor = request.app.state.monitor
        who = auth.caller(request)
        return monitor.begin(tenant.id, caller_of(who, request.headers.get("x-gedrag-user")), route)

    return begin


Searching = Annotated[Answering, Depends(answering("search"))]


def search_filter(
    tenant: Tenant,
    f: SearchFilters,
    collections: list[str] | None = None,
    hidden: tuple[str, ...] = (),
) -> SearchFilter:
    return SearchFilter(
        tenant_id=tenant.id,
        collections=collections or f.collections,
        tags=f.tags,
        metadata=f.metadata,
        document_ids=f.document_ids,
        uploaded_after=f.uploaded_after.timestamp() if f.uploaded_after else None,
        uploaded_before=f.uploaded_before.timestamp() if f.uploaded_before else None,
        document_types=f.document_types,
        correspondents=f.correspondents,
        fields=parse_conditions({k: str(v) for k, v in (f.fields or {}).items()}, BUILTIN_FIELDS),
        hidden_document_ids=hidden,
    )


def passages(result: SearchResult) -> list[PassagePublic]:
    return [PassagePublic.model_validate(p) for p in result.passages]


def ask_response(reply: Reply, trace_id: str | None = None) -> AskResponse:
    return AskResponse(
        answer=reply.answer.text,
        grounded=reply.answer.grounded,
        citations=[CitationPublic.model_validate(c) for c in reply.answer.citations],
        passages=passages(reply.search),
        question=reply.question,
        timings_ms=reply.search.timings_ms,
        trace_id=trace_id,
    )


@router.post("/search")
def search(request: Request, body: SearchRequest, tenant: Caller, run: Searching) -> SearchResponse:
    """Retrieval only: passages with their scores and per-stage timings."""
    flt = search_filter(tenant, body, hidden=auth.hidden_for(request))
    result = run.qa.search(body.query, flt, body.top_k)
    run.searched(body.query, flt, body.top_k, result)
    return SearchResponse(
        passages=passages(result), timings_ms=result.timings_ms, trace_id=run.trace_id
    )


# ``stream: true`` answers server-sent events instead of the JSON answer.
SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event: passages, then token (repeated), citations, done; "
    "its data is JSON.",
    "properties": {
        "event": {"type": "string", "enum": ["passages", "token", "citations", "done"]},
        "data": {"type": "string"},
    },
    "required": ["event", "data"],
}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}
}


@router.post("/ask", response_model=AskResponse, responses=STREAMED)
def ask(
    request: Request,
    body: AskRequest,
    tenant: Caller,
    run: Annotated[Answering, Depends(answering("ask"))],
) -> Any:
    """A grounded answer with citations; ``stream=true`` answers with server-sent events."""
    flt = search_filter(tenant, body, hidden=auth.hidden_for(request))
    if body.stream:
        return _sse(run, body.question, flt, body.top_k, ())
    reply = run.qa.ask(body.question, flt, top_k=body.top_k)
    run.answered(body.question, flt, body.top_k, reply)
    return ask_response(reply, run.trace_id)


@router.post("/chat", response_model=AskResponse, responses=STREAMED)
def chat(
    request: Request,
    body: ChatRequest,
    tenant: Caller,
    run: Annotated[Answering, Depends(answering("chat"))],
) -> Any:
    """Ask within a conversation: follow-up questions are made standalone before searching."""
    question, history = split_messages(body.messages)
    flt = search_filter(tenant, body, hidden=auth.hidden_for(request))
    if body.stream:
        return _sse(run, question, flt, body.top_k, history)
    reply = run.qa.ask(question, flt, top_k=body.top_k, history=history)
    run.answered(question, flt, body.top_k, reply, history)
    return ask_response(reply, run.trace_id)


def split_messages(messages: list[ChatMessage]) -> tuple[str, list[Message]]:
    if messages[-1].role != "user":
        raise InvalidInput("the last message must be the user's question", field="messages")
    history = [Message(role=m.role, content=m.content) for m in messages[:-1] if m.role != "system"]
    return messages[-1].content, history


def citations_public(answer: Answer) -> list[dict[str, Any]]:
    return [CitationPublic.model_validate(c).model_dump() for c in answer.citations]


def first_delta(deltas: Iterator[str]) -> str | None:
    """Pull the first delta before answering 200: a model that is down answers 503, not a
    stream that stops at once."""
    return next(deltas, None)


def chain_deltas(first: str | None, rest: Iterator[str]) -> Iterator[str]:
    if first is not None:
        yield first
        yield from rest


def _sse(
    run: Answering,
    question: str,
    flt: SearchFilter,
    top_k: int | None,
    history: list[Message] | tuple[()],
) -> StreamingResponse:
    streamed = run.qa.stream(question, flt, top_k=top_k, history=history)
    first = first_delta(streamed.deltas)

    def events() -> Iterator[str]:
        yield _event(
            "passages",
            {
                "passages": [p.model_dump() for p in passages(streamed.search)],
                "question": streamed.question,
            },
        )
        text = ""
        for delta in chain_deltas(first, streamed.deltas):
            text += delta
            yield _event("token", {"text": delta})
        answer = streamed.finish(text)
        run.streamed(
            question,
            streamed.question,
            flt,
            top_k,
            streamed.search,
            streamed.used,
            text,
            answer,
            history,
        )
        yield _event(
            "citations",
            {
                "answer": answer.text,
                "grounded": answer.grounded,
                "citations": citations_public(answer),
            },
        )
        yield _event("done", {"timings_ms": streamed.search.timings_ms, "trace_id": run.trace_id})

    return StreamingResponse(events(), media_type="text/event-stream")


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
