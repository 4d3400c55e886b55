"""Every upload, download, view, question, change, deletion and promotion written to the audit
trail (issue #19), by one ASGI middleware rather than a line in each route.

After a request that :data:`ACTIONS` names has been answered, the middleware writes one entry:
who (the caller authentication found), when, from where (the client address) and how they
signed in, the target (the route's document, collection or release, else the documents the
answer names) and what the answer said about documents: a question's entry lists the
documents it cited and those whose passages it returned, never the question's text (the trail
outlives documents and must not become a copy of what they say). The response is read as it
streams past, up to :data:`MAX_CAPTURE` bytes, without delaying it. Refusals (401, 403) are
written by authentication itself (:mod:`serving.auth`); a 403 a route raised on its own
(promotion) is written here. Entries of the records lifecycle (trash, restore, purge) are
written by it, with more detail, so they are not listed here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.access import Caller, audited_as
from core.errors import GedragError

log = logging.getLogger(__name__)

ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/v1/documents"): "document.upload",
    ("POST", "/v1/documents/batch"): "document.upload",
    ("POST", "/v1/documents/{document_id}/versions"): "document.upload",
    ("GET", "/v1/documents/{document_id}"): "document.view",
    ("GET", "/v1/documents/{document_id}/versions"): "document.view",
    ("GET", "/v1/documents/{document_id}/content"): "document.download",
    ("GET", "/v1/documents/{document_id}/versions/{number}/content"): "document.download",
    ("PATCH", "/v1/documents/{document_id}"): "document.change",
    ("POST", "/v1/sorting/documents/{document_id}/accept"): "document.change",
    ("POST", "/v1/sorting/documents/{document_id}/correct"): "document.change",
    ("POST", "/v1/sorting/documents/{document_id}/undo"): "document.change",
    ("POST", "/v1/search"): "question.search",
    ("POST", "/v1/ask"): "question.ask",
    ("POST", "/v1/chat"): "question.chat",
    ("POST", "/v1/chat/completions"): "question.chat",
    ("POST", "/v1/collections"): "collection.create",
    ("DELETE", "/v1/collections/{name:path}"): "collection.delete",
    ("POST", "/v1/releases/{release_id}/promote"): "release.promote",
    ("POST", "/v1/eval/runs"): "release.evaluate",
}
# Bodies read for what they say about documents; larger ones are written without it.
MAX_CAPTURE = 2 * 1024 * 1024
READS_BODY = ("document.upload", "question.search", "question.ask", "question.chat")
TARGET_PARAMS = ("document_id", "name", "release_id")


def _documents(items: Iterable[Any]) -> list[str]:
    return sorted(
        {str(i["document_id"]) for i in items if isinstance(i, dict) and "document_id" in i}
    )


def _events(body: bytes) -> list[Any]:
    """The JSON ``data:`` of server-sent events (a streamed answer)."""
    found: list[Any] = []
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("data:"):
            try:
                found.append(json.loads(line[5:].strip()))
            except ValueError:
                continue
    return found


def what(
    action: str, params: dict[str, Any], body: bytes, media_type: str
) -> tuple[str, dict[str, Any]]:
    """The entry's target and detail, from the route's parameters and the answer's body."""
    detail: dict[str, Any] = {}
    if "number" in params:
        detail["version"] = params["number"]
    target = next((str(params[p]) for p in TARGET_PARAMS if p in params), "")
    if action not in READS_BODY or not body:
        return target, detail
    if media_type.startswith("text/event-stream"):
        citations: list[Any] = []
        passages: list[Any] = []
        for data in _events(body):  # events passages, citations (OpenAI: the last chunk)
            if isinstance(data, dict):
                citations.extend(data.get("citations") or [])
                passages.extend(data.get("passages") or [])
        detail.update(cited=_documents(citations), returned=_documents(passages), streamed=True)
        return target, detail
    try:
        data = json.loads(body)
    except ValueError:
        return target, detail
    if not isinstance(data, dict):
        return target, detail
    if action == "document.upload":
        docs = _documents(data.get("items") or [data])
        detail["documents"] = docs
        return target or (docs[0] if docs else ""), detail
    detail["cited"] = _documents(data.get("citations") or [])
    detail["returned"] = _documents(data.get("passages") or [])
    return target, detail


class AuditTrail:
    """Outer ASGI middleware: writes the entry once the answer has been sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, media_type, chunks, size = 500, "", [], 0

        async def capture(message: Message) -> None:
            nonlocal status, media_type, size
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"content-type":
                        media_type = bytes(value).decode("latin-1")
            elif message["type"] == "http.response.body" and size <= MAX_CAPTURE:
                body = message.get("body", b"")
                size += len(body)
                chunks.append(body)
            await send(message)

        await self.app(scope, receive, capture)
        route = getattr(scope.get("route"), "path", None)
        action = ACTIONS.get((scope["method"], str(route)))
        state = scope.get("state", {})
        caller: Caller | None = state.get("caller")
        if action is None or caller is None:
            return
        if 200 <= status < 300:
            outcome = "done"
        elif status in (401, 403) and not state.get("refusal_audited"):
            outcome = "refused"
        else:
            return
        body = b"".join(chunks) if size <= MAX_CAPTURE else b""
        target, detail = what(action, dict(scope.get("path_params", {})), body, media_type)
        client = scope.get("client")
        runtime = scope["app"].state.runtime
        try:
            with audited_as(client[0] if client else "", caller.via):
                await run_in_threadpool(
                    runtime.catalog.audit.append,
                    caller.tenant.id,
                    caller.actor,
                    action,
                    target,
                    outcome,
                    detail,
                )
        except GedragError:
            log.exception("could not write the audit entry", extra={"action": action})
