"""The API's two middlewares, as plain ASGI: no per-request task group or response copy (what
Starlette's ``BaseHTTPMiddleware`` costs), and a streamed response is timed to its last byte."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import observability
from core.metrics import HTTP_LATENCY
from serving import errors

access = logging.getLogger("gedrag.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's own request id is kept when it is a plain token; anything else is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


class Observe:
    """Request id (the caller's or a new one, returned in ``X-Request-ID``), the latency
    histogram by route template, and one access log line with status, duration and tenant.
    Outermost, so that rejected requests are counted too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with observability.bound(request_id=rid):
            start = time.perf_counter()
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - start
                # The route template, not the path: ids must not become label values.
                route = getattr(scope.get("route"), "path", "unmatched")
                HTTP_LATENCY.labels(scope["method"], route, str(status)).observe(elapsed)
                access.info(
                    "%s %s %s",
                    observability.escape(scope["method"]),
                    # Escaped here too (the formatters escape every value): a handler with
                    # another formatter still never gets "%0a" as a line break.
                    observability.escape(scope["path"]),
                    status,
                    extra={
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                        # Set by authentication (request.state lives in the scope).
                        "tenant": scope.get("state", {}).get("tenant"),
                    },
                )


class RejectOversized:
    """413 from Content-Length alone, before the body is read and spooled to disk."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int], slack: int) -> None:
        self.app = app
        self.limit_for = limit_for  # path → the upload limit there, bytes
        self.slack = slack  # what the body may carry beyond the files (multipart framing)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT"):
            length = _header(scope, b"content-length")
            limit = self.limit_for(scope["path"])
            if length.isdigit() and int(length) > limit + self.slack:
                response = JSONResponse(
                    errors.error_body(
                        "payload_too_large",
                        f"request body of {length} bytes exceeds the {limit} byte upload limit",
                    ),
                    status_code=413,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
