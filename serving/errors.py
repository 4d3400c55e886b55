"""The one place where errors become HTTP responses: ``{"error": code, "detail": ...}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    GedragError,
    IngestionError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
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
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    IngestionError: 422,
    TransientError: 503,
    ConfigurationError: 500,
    GedragError: 500,
}


def status_for(exc: GedragError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **{k: v for k, v in extra.items() if v is not None}}


def install(app: FastAPI) -> None:
    @app.exception_handler(GedragError)
    async def gedrag_error(_: Request, exc: GedragError) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "5"}
        body = error_body(exc.code, exc.detail, field=getattr(exc, "field", None))
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        detail = f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "invalid")
        return JSONResponse(error_body("invalid_input", detail, field=field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )
