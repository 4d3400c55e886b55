"""OpenAI compatibility, so that existing chat front ends and SDKs can use gedrag:
``GET /v1/models`` and ``POST /v1/chat/completions``, with OpenAI's error shape on both
(``{"error": {"message", "type", "param", "code"}}``, see ``serving.errors``).

A model id names what a question searches: ``gedrag`` (every collection of the key's tenant,
served by the production release), ``gedrag/<collection>``, ``gedrag@<release>`` (a release by
id or name: its retrieval and generation settings) and ``gedrag@<release>/<collection>``. A
model this key cannot use answers 404 ``model_not_found``, as OpenAI does, instead of being
served as ``gedrag``.

``usage`` counts tokens with the embedding model's tokenizer (XLM-R's SentencePiece for the
default multilingual-e5-small), gedrag's own unit: prompt = the tokens of the messages'
contents, completion = the answer's. A generative model's tokenizer would count somewhat
differently.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from core.domain import Tenant
from core.errors import ModelNotFound, NotFound
from monitoring.service import Monitor
from runtime import Runtime
from serving import auth
from serving.api import ERRORS, current_tenant, runtime
from serving.monitoring_api import rate
from serving.qa_api import (
    caller_of,
    chain_deltas,
    citations_public,
    first_delta,
    release_qa,
    search_filter,
    split_messages,
)
from serving.schemas import (
    ChatCompletionRequest,
    ChatMessage,
    ModelPublic,
    ModelsPublic,
    OpenAIErrorPublic,
    SearchFilters,
)
from stores.catalog.evaluation import EvalStore

# Errors here are OpenAI's shape (serving.errors.OPENAI_ROUTES), documented as such.
OPENAI_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": OpenAIErrorPublic} for code in ERRORS
}
router = APIRouter(prefix="/v1", responses=OPENAI_ERRORS, tags=["openai"])
Caller = Annotated[Tenant, Depends(current_tenant)]
RT = Annotated[Runtime, Depends(runtime)]

MODEL = "gedrag"
_MODEL_ID = re.compile(rf"{MODEL}(?:@(?P<release>[^/]+))?(?:/(?P<collection>.+))?")


@dataclass(frozen=True)
class Target:
    """What a model id asks for: a release (None: production) and a collection (None: all)."""

    release_id: str | None
    collection: str | None


def resolve_model(rt: Runtime, tenant: Tenant, model: str) -> Target:
    """The release and collection a model id names; :class:`ModelNotFound` when it is not one
    of this tenant's models."""
    found = _MODEL_ID.fullmatch(model)
    missing = ModelNotFound(
        f"The model {model!r} does not exist or you do not have access to it "
        "(GET /v1/models lists yours)."
    )
    if found is None:
        raise missing
    collection, release = found["collection"], found["release"]
    if collection is not None and collection not in {
        c.name for c in rt.catalog.collections.of_tenant(tenant.id)
    }:
        raise missing
    release_id = None
    if release is not None:
        try:
            release_id = EvalStore(rt.catalog).get_release(release).id
        except NotFound as exc:
            raise missing from exc
    return Target(release_id, collection)


@router.get("/models")
def list_models(request: Request, rt: RT, tenant: Caller) -> ModelsPublic:
    """The models this caller can use: every collection of its tenant it may read, and every
    release."""
    models = [
        ModelPublic(id=MODEL, created=int(tenant.created_at.timestamp()), owned_by=tenant.name)
    ]
    models += [
        ModelPublic(
            id=f"{MODEL}/{c.name}", created=int(c.created_at.timestamp()), owned_by=tenant.name
        )
        for c in rt.catalog.collections.of_tenant(tenant.id, auth.caller(request).read_filter)
    ]
    models += [
        ModelPublic(id=f"{MODEL}@{r.id}", created=int(r.created_at.timestamp()), owned_by=MODEL)
        for r in EvalStore(rt.catalog).list_releases()
    ]
    return ModelsPublic(data=models)


@router.post("/chat/completions")
def chat_completions(request: Request, body: ChatCompletionRequest, rt: RT, tenant: Caller) -> Any:
    """OpenAI-compatible. The answer's text carries [n] markers; ``citations`` lists them."""
    target = resolve_model(rt, tenant, body.model)
    question, history = split_messages(body.messages)
    monitor: Monitor = request.app.state.monitor
    if body.feedback is not None:  # gedrag's extra field: a rating of an earlier answer
        rate(monitor, tenant, body.feedback.trace_id, body.feedback)
    pinned = None
    if target.release_id is not None:
        pinned = (target.release_id, release_qa(request.app.state, target.release_id))
    run = monitor.begin(
        tenant.id,
        caller_of(auth.caller(request), body.user or request.headers.get("x-gedrag-user")),
        "openai",
        pinned=pinned,
    )
    service = run.qa
    collections = [target.collection] if target.collection else None
    flt = search_filter(tenant, SearchFilters(), collections, auth.hidden_for(request))
    created = int(time.time())
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        streamed = service.stream(question, flt, history=history)
        first = first_delta(streamed.deltas)
        with_usage = body.stream_options is not None and body.stream_options.include_usage

        def events() -> Iterator[str]:
            text = ""
            for delta in chain_deltas(first, streamed.deltas):
                text += delta
                chunk = _chunk(completion_id, created, body.model, {"content": delta})
                yield f"data: {json.dumps(chunk)}\n\n"
            answer = streamed.finish(text)
            run.streamed(
                question,
                streamed.question,
                flt,
                None,
                streamed.search,
                streamed.used,
                text,
                answer,
                history,
            )
            final = _chunk(completion_id, created, body.model, {}, "stop")
            final["citations"] = citations_public(answer)
            final["trace_id"] = run.trace_id
            yield f"data: {json.dumps(final)}\n\n"
            if with_usage:  # OpenAI's last chunk: no choices, the counts
                last = _chunk(completion_id, created, body.model, None)
                last["usage"] = usage(rt, body.messages, answer.text)
                yield f"data: {json.dumps(last)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    reply = service.ask(question, flt, history=history)
    run.answered(question, flt, None, reply, history)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.answer.text},
                "finish_reason": "stop",
            }
        ],
        "citations": citations_public(reply.answer),
        "usage": usage(rt, body.messages, reply.answer.text),
        "trace_id": run.trace_id,
    }


def usage(rt: Runtime, messages: list[ChatMessage], answer: str) -> dict[str, int]:
    """Token counts in the embedding model's tokenizer (see the module's docstring)."""
    count = rt.models.embedder.count_tokens
    prompt = sum(count(m.content) for m in messages)
    completion = count(answer)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chunk(
    cid: str, created: int, model: str, delta: dict[str, str] | None, finish: str | None = None
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }
