"""The OpenAPI documentation pages, with their scripts and styles served by gedrag itself.

FastAPI's default ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN, so without
internet they were blank. The assets come from the PyPI package ``fastapi-offline`` (Swagger
UI 5, which reads OpenAPI 3.1 as FastAPI writes it, and ReDoc 2), served under
``/docs-assets``: FastAPI's documented recipe for self-hosting them, nothing vendored here.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def install(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI) and ``/redoc`` from local assets. The app must be built
    with ``docs_url=None, redoc_url=None`` (no CDN pages)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}{openapi_url}",
            title=f"{app.title} - API",
            oauth2_redirect_url=f"{base}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{base}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=f"{base}{openapi_url}",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{base}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
