"""The console as the API serves it: the page and its assets at ``/`` and ``/console/``, with a
strict content-security policy, while ``/v1`` keeps requiring a key."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from serving.app import create_app
from serving.console import STATIC

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(), embedded_worker=False)) as c:
        yield c


def test_the_page_is_served_at_the_root_with_a_strict_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/app.js">' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [(p.name, "text/javascript") for p in STATIC.glob("*.js")]
    + [("console.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_every_asset_is_served_with_its_type(
    client: TestClient, name: str, media_type: str
) -> None:
    r = client.get(f"/console/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media_type)
    assert r.content == (STATIC / name).read_bytes()
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_the_page_is_public_but_the_api_still_wants_a_key(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    r = client.get("/v1/collections")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    catalog = client.app.state.runtime.catalog  # type: ignore[attr-defined]
    catalog.tenants.create("acme")
    key, _ = catalog.tenants.create_key("acme")
    r = client.get("/v1/collections", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200


def test_nothing_outside_the_static_folder_and_no_html_for_unknown_routes(
    client: TestClient,
) -> None:
    for path in ("/console/../app.py", "/console/%2e%2e/app.py", "/console/missing.js"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "create_app" not in r.text
    # The releases page tells "unavailable" from a JSON 404 on a route the server lacks.
    r = client.get("/v1/no-such-route")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_a_favicon_for_the_console_and_for_every_other_page(client: TestClient) -> None:
    page = client.get("/").text
    assert '<link rel="icon" href="/console/favicon.svg" type="image/svg+xml">' in page
    icon = (STATIC / "favicon.svg").read_bytes()
    assert icon.startswith(b"<svg ") and b"<script" not in icon
    # /docs and JSON answers carry no <link>: browsers ask for /favicon.ico there.
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.content == icon
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert "script-src 'self'" in r.headers["content-security-policy"]
