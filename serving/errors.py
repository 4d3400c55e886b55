"""The one place where errors become HTTP responses: ``{"error": code, "detail": ...}``."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from core.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    GedragError,
    IngestionError,
    Interrupted,
    InvalidInput,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    TransientError,
    Unauthorized,
    UnsupportedMediaType,
)

# Most specific first is not needed: the class's own MRO is walked, nearest ancestor wins.
STATUS: dict[type[GedragError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    QuotaExceeded: 429,
    Interrupted: 503,
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    IngestionError: 422,
    TransientError: 503,
    ConfigurationError: 500,
    GedragError: 500,
}


# OpenAI-compatible routes answer errors in OpenAI's shape, which its SDKs parse.
OPENAI_ROUTES = frozenset({"/v1/chat/completions", "/v1/models"})


def status_for(exc: GedragError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **{k: v for k, v in extra.items() if v is not None}}


def openai_error_body(status: int, code: str, detail: str, field: str | None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI's API answers."""
    if status == 401:
        kind, code = "invalid_request_error", "invalid_api_key"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    return {"error": {"message": detail, "type": kind, "param": field, "code": code}}


def _body(request: Request, status: int, code: str, detail: str, field: str | None) -> Any:
    if request.url.path in OPENAI_ROUTES:
        return openai_error_body(status, code, detail, field)
    return error_body(code, detail, field=field)


def install(app: FastAPI) -> None:
    @app.exception_handler(GedragError)
    async def gedrag_error(request: Request, exc: GedragError) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "5"}
        if isinstance(exc, QuotaExceeded) and exc.retry_after_s is not None:
            headers = {"Retry-After": str(exc.retry_after_s)}
        field = getattr(exc, "field", None)
        if isinstance(exc, ModelNotFound):
            field = "model"
        body = _body(request, status, exc.code, exc.detail, field)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            # loc is ("body", <character position>): not a field.
            position = first.get("loc", (None, None))[-1]
            reason = (first.get("ctx") or {}).get("error", "invalid JSON")
            detail = f"the request body is not valid JSON: {reason} at character {position}"
            return JSONResponse(_body(request, 422, "invalid_input", detail, None), status_code=422)
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        detail = f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "invalid")
        return JSONResponse(_body(request, 422, "invalid_input", detail, field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI answers 400 for a body it cannot decode (bytes that are not UTF-8, a
            # broken multipart form): a malformed body is 422 everywhere, as for bad JSON.
            detail = f"the request body cannot be read: {exc.detail}"
            return JSONResponse(_body(request, 422, "invalid_input", detail, None), status_code=422)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route matching the path only;
            # GET, PATCH and DELETE /v1/documents/{id} are three routes.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PARAMETER = re.compile(r"\{[^}]+\}")


def allowed_methods(request: Request) -> list[str]:
    """The methods of the path's operations in the OpenAPI schema: of the most specific path
    template that matches (``/v1/documents/batch`` before ``/v1/documents/{document_id}``);
    for paths outside the schema, the methods some route accepts there."""
    path = request.scope["path"]
    best: tuple[int, dict[str, Any]] | None = None
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "/".join(
            "[^/]+" if _PARAMETER.fullmatch(part) else re.escape(part)
            for part in template.split("/")
        )
        if re.fullmatch(pattern, path):
            specificity = template.count("{")
            if best is None or specificity < best[0]:
                best = (specificity, operations)
    if best is not None:
        methods = {method.upper() for method in best[1] if method.upper() in _METHODS}
    else:
        methods = {
            method
            for method in _METHODS
            for route in request.app.router.routes
            if route.matches({**request.scope, "method": method})[0] == Match.FULL
        }
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
