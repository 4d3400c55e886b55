"""An MCP server (Model Context Protocol, the official ``mcp`` SDK) inside the API, so that
assistants and agents (Claude Desktop, IDEs, agent frameworks) use a tenant's documents as
tools: ``search``, ``ask``, ``list_documents`` and ``download_document``.

Transport: streamable HTTP at ``/mcp`` on the API's own port, stateless (each request stands
alone, any API process can answer it) with JSON responses. Keys and tenants are the API's:
every request carries ``Authorization: Bearer <key>`` (or ``X-API-Key``, a session token or a
single sign-on access token), checked before the SDK sees it (401 otherwise, the same body as
``/v1``; 403 without the ``read`` scope), and each tool acts for that caller within its tenant,
exactly as the matching ``/v1`` route does: documents its access lists hide are neither
searched, cited, listed nor downloaded.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import BlobResourceContents, EmbeddedResource, TextResourceContents
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core import observability
from core.access import Caller, audited_as
from core.access import Scope as AccessScope
from core.domain import DocumentFilter, DocumentStatus, Tenant
from core.errors import Forbidden, GedragError, InvalidInput, NotFound, Unauthorized
from monitoring.service import Answering, Monitor
from runtime import Runtime
from serving import auth, errors
from serving.api import api_key_of
from serving.qa_api import caller_of, passages, search_filter
from serving.schemas import (
    CitationPublic,
    DocumentPublic,
    DocumentsPage,
    SearchFilters,
    SearchResponse,
)
from stores.catalog.traces import Route
from stores.vectors import SearchFilter

log = logging.getLogger(__name__)

PATH = "/mcp"
_CALLER = "gedrag_caller"  # key of the authenticated caller in the request's ASGI state
# Originals are sent base64 in one JSON message: ~1.33x their size. Larger ones are refused
# with the HTTP route to use instead.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
_TEXT_TYPES = ("text/", "message/rfc822")

INSTRUCTIONS = (
    "gedrag holds the documents of your organisation. Use `search` to find passages, `ask` for "
    "a grounded answer whose [n] markers cite them, `list_documents` to browse, and "
    "`download_document` for a document's original file."
)


class Answer(BaseModel):
    """A grounded answer; ``grounded`` is false when the documents do not answer."""

    answer: str
    grounded: bool
    citations: list[CitationPublic]
    question: str = Field(description="The standalone question that was searched.")
    trace_id: str | None = Field(
        default=None, description="Its trace: rate it with POST /v1/traces/{id}/feedback."
    )


def build(state: Any) -> MCPServer:
    """The MCP server whose tools act on the app whose ``state`` holds the runtime."""
    server = MCPServer(
        "gedrag",
        title="gedrag documents",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        log_level="WARNING",
    )

    def rt() -> Runtime:
        runtime: Runtime = state.runtime
        return runtime

    def question_filter(ctx: Context, collections: list[str] | None) -> tuple[Tenant, SearchFilter]:
        """The caller's tenant and what its question may search: its collections, never a
        document the caller may not read."""
        who = caller_in(ctx)
        hidden = auth.hidden_documents(rt(), who)
        flt = search_filter(who.tenant, SearchFilters(collections=collections), hidden=hidden)
        return who.tenant, flt

    def answering(ctx: Context, tenant: Tenant, route: Route) -> Answering:
        """Production or the tenant's canary answers, traced like the HTTP routes."""
        monitor: Monitor = state.monitor
        request = ctx.request_context.request
        hint = request.headers.get("x-gedrag-user") if isinstance(request, Request) else None
        return monitor.begin(tenant.id, caller_of(caller_in(ctx), hint), route)

    def audit(ctx: Context, action: str, target: str, detail: dict[str, Any]) -> None:
        """The call in the audit trail, as the matching ``/v1`` route writes it (the tool
        named in the detail): who, from where, and the documents the answer named."""
        who = caller_in(ctx)
        request = ctx.request_context.request
        client = request.client if isinstance(request, Request) else None
        try:
            with audited_as(client.host if client else "", who.via):
                rt().catalog.audit.append(
                    who.tenant.id, who.actor, action, target, "done", {**detail, "mcp": True}
                )
        except GedragError:
            log.exception("could not write the audit entry", extra={"action": action})

    @server.tool()
    def search(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=2000)],
        collections: Annotated[
            list[str] | None, Field(description="Only these collections (default: all).")
        ] = None,
        top_k: Annotated[int | None, Field(ge=1, le=50, description="Passages wanted.")] = None,
    ) -> SearchResponse:
        """Find the passages of your documents that best match a query (hybrid search)."""
        with said_to_the_caller():
            tenant, flt = question_filter(ctx, collections)
            run = answering(ctx, tenant, "search")
            result = run.qa.search(query, flt, top_k)
            run.searched(query, flt, top_k, result)
            returned = sorted({p.document_id for p in result.passages})
            audit(ctx, "question.search", "", {"cited": [], "returned": returned})
        return SearchResponse(
            passages=passages(result), timings_ms=result.timings_ms, trace_id=run.trace_id
        )

    @server.tool()
    def ask(
        ctx: Context,
        question: Annotated[str, Field(min_length=1, max_length=2000)],
        collections: Annotated[
            list[str] | None, Field(description="Only these collections (default: all).")
        ] = None,
    ) -> Answer:
        """Answer a question from your documents only, citing passages as [n]."""
        with said_to_the_caller():
            tenant, flt = question_filter(ctx, collections)
            run = answering(ctx, tenant, "mcp")
            reply = run.qa.ask(question, flt)
            run.answered(question, flt, None, reply)
            cited = sorted({c.document_id for c in reply.answer.citations})
            returned = sorted({p.document_id for p in reply.search.passages})
            audit(ctx, "question.ask", "", {"cited": cited, "returned": returned})
        return Answer(
            answer=reply.answer.text,
            grounded=reply.answer.grounded,
            citations=[CitationPublic.model_validate(c) for c in reply.answer.citations],
            question=reply.question,
            trace_id=run.trace_id,
        )

    @server.tool()
    def list_documents(
        ctx: Context,
        collection: str | None = None,
        tag: str | None = None,
        status: DocumentStatus | None = None,
        title: Annotated[str | None, Field(description="Text contained in the title.")] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        cursor: Annotated[
            str | None, Field(description="``next_cursor`` of the previous page.")
        ] = None,
    ) -> DocumentsPage:
        """Your documents, newest first, with their status, tags and versions."""
        with said_to_the_caller():
            who = caller_in(ctx)
            flt = DocumentFilter(
                collection=collection,
                tag=tag,
                status=status,
                title_contains=title,
                readable_by=who.read_filter,
            )
            limit = min(limit, rt().settings.api.page_size_max)
            page = rt().catalog.documents.page(who.tenant.id, flt, cursor=cursor, limit=limit)
        return DocumentsPage(
            items=[DocumentPublic.model_validate(d) for d in page.items],
            next_cursor=page.next_cursor,
        )

    @server.tool()
    def download_document(
        ctx: Context,
        document_id: str,
        version: Annotated[int | None, Field(ge=1, description="Default: the current one.")] = None,
    ) -> EmbeddedResource:
        """A document's original file: text formats as text, others base64-encoded."""
        with said_to_the_caller():
            runtime = rt()
            who = caller_in(ctx)
            tenant = who.tenant
            if document_id in auth.hidden_documents(runtime, who):  # as if it did not exist
                raise NotFound(f"no document with id {document_id!r}")
            v = runtime.catalog.versions.get(tenant.id, document_id, version)
            if v.size_bytes > MAX_DOWNLOAD_BYTES:
                raise InvalidInput(
                    f"{v.filename} is {v.size_bytes} bytes, over the {MAX_DOWNLOAD_BYTES} bytes "
                    f"MCP sends; download it with GET /v1/documents/{document_id}/versions/"
                    f"{v.number}/content"
                )
            data = runtime.blobs.read(tenant.id, v.sha256)  # NotFound once deleted, no 500
            audit(ctx, "document.download", document_id, {"version": v.number})
        uri = f"gedrag://documents/{document_id}/versions/{v.number}/{v.filename}"
        resource: TextResourceContents | BlobResourceContents
        if v.media_type.startswith(_TEXT_TYPES):
            text = data.decode("utf-8", errors="replace")
            resource = TextResourceContents(uri=uri, mime_type=v.media_type, text=text)
        else:
            blob = base64.b64encode(data).decode("ascii")
            resource = BlobResourceContents(uri=uri, mime_type=v.media_type, blob=blob)
        return EmbeddedResource(resource=resource)

    return server


@contextmanager
def said_to_the_caller() -> Iterator[None]:
    """gedrag's own errors reach the caller with their detail ("no document with id ...");
    the SDK shows other exceptions only as "Error executing tool"."""
    try:
        yield
    except GedragError as exc:
        raise ToolError(f"{exc.code}: {exc.detail}") from exc


def caller_in(ctx: Context) -> Caller:
    """The caller :class:`Authenticated` put in the HTTP request that carried this call."""
    request = ctx.request_context.request
    who = request.scope.get("state", {}).get(_CALLER) if isinstance(request, Request) else None
    if not isinstance(who, Caller):  # never reached behind Authenticated; refuse, not guess
        raise Unauthorized("MCP tool called without an authenticated API key")
    return who


class Authenticated:
    """ASGI wrapper: the request's API key must name a tenant, else 401 with the API's error
    body; the tenant goes into the request's state for the tools (and the access log)."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rt: Runtime = self.state.runtime
        try:
            key = api_key_of(headers.get("authorization"), headers.get("x-api-key"))
            oidc = auth.oidc_client(self.state, rt.settings)
            who = await run_in_threadpool(auth.authenticate, rt, key, oidc)
            if not who.can(AccessScope.READ):
                raise Forbidden("this key or user may not read documents (scope read)")
        except GedragError as exc:
            status = errors.status_for(exc)
            extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            body = errors.error_body(exc.code, exc.detail)
            await JSONResponse(body, status_code=status, headers=extra)(scope, receive, send)
            return
        observability.tenant.set(who.tenant.id)
        state = scope.setdefault("state", {})
        state[_CALLER] = who
        state["tenant"] = who.tenant.id  # the access log's field (serving.middleware.Observe)
        await self.app(scope, receive, send)


def mount(app: Any) -> Any:
    """Add ``/mcp`` to the FastAPI ``app``; returns the async context manager that runs the
    MCP session manager, to enter in the app's lifespan."""
    server = build(app.state)
    server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        # DNS-rebinding protection guards servers without authentication; every call here
        # carries an API key, which a rebinding page does not have, and the Host header of a
        # deployment behind a proxy is not known in advance.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    app.add_route(PATH, Authenticated(StreamableHTTPASGIApp(manager), app.state))

    @asynccontextmanager
    async def running() -> AsyncIterator[None]:
        async with manager.run():
            yield

    return running
