"""The web console: static files (HTML, JS modules, CSS, no build step) served by the API.

``GET /`` answers the page, ``/console/*`` its assets. The page itself holds no data and needs no
key; every call it makes goes to ``/v1`` with the key the user typed, kept in the browser tab's
``sessionStorage``.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"

# Scripts and styles only from the API's own origin (no CDN, no inline script); evaluation
# reports are shown in a sandboxed srcdoc frame, which inherits this policy: their inline
# styles and data: images (plots) are allowed, scripts are not.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; frame-src 'self' about: data: blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """Static files with the console's security headers; ``no-cache`` so that a new release
    of gedrag is picked up at the next load (files are small; ETags make revalidation cheap)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response


def install(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (/docs, JSON).
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml", headers=HEADERS)

    app.mount("/console", ConsoleFiles(directory=STATIC), name="console")
