"""A real OpenID Connect provider on loopback for the single sign-on tests: panva's
``oidc-provider`` (OpenID Certified) run by Node.js from ``infra/dev/oidc`` (``make oidc``
installs it, pinned by its package-lock.json), once per test module.

Its accounts and clients are the test's: :data:`ACCOUNTS` (an HR admin, a Legal user, a
disabled-to-be user) and two confidential clients, ``gedrag`` (tokens valid an hour) and
``gedrag-short`` (tokens that expire after 2 s). Access tokens are JWTs for the API's resource
indicator, carrying the groups claim. :func:`sign_in` plays the browser: it follows the
provider's redirects and fills its login form, and returns where the provider sends the browser
back. When Node.js or the package is missing the tests skip with the install command, and fail
under ``GEDRAG_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "infra" / "dev" / "oidc"
RESOURCE = "urn:gedrag:api"
SECRET = "test-client-secret-0123456789"
CALLBACK = "http://testserver/v1/auth/oidc/callback"
START_TIMEOUT_S = 60
ACCOUNTS = [
    {
        "sub": "sub-alice",
        "username": "alice",
        "password": "alice-password-1",
        "email": "alice@acme.test",
        "name": "Alice Admin",
        "groups": ["it-admins", "HR"],
    },
    {
        "sub": "sub-bob",
        "username": "bob",
        "password": "bob-password-12",
        "email": "bob@acme.test",
        "name": "Bob Legal",
        "groups": ["Legal"],
    },
    {
        "sub": "sub-carol",
        "username": "carol",
        "password": "carol-password-1",
        "email": "carol@acme.test",
        "name": "Carol HR",
        "groups": ["HR"],
    },
]


@dataclass(frozen=True)
class Provider:
    issuer: str

    def client(self, short: bool = False) -> str:
        return "gedrag-short" if short else "gedrag"


def missing() -> str | None:
    """Why the provider cannot run here, or ``None``."""
    if shutil.which("node") is None:
        return "Node.js is not installed (Debian: apt-get install nodejs npm)"
    if not (PROVIDER / "node_modules" / "oidc-provider").is_dir():
        return "the OpenID provider is not installed: run `make oidc` (npm ci in infra/dev/oidc)"
    return None


def _clients() -> list[dict[str, object]]:
    return [
        {
            "client_id": name,
            "client_secret": SECRET,
            "redirect_uris": [CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }
        for name in ("gedrag", "gedrag-short")
    ]


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[Provider]:
    reason = missing()
    if reason is not None:
        if os.environ.get("GEDRAG_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    env = {
        **os.environ,
        "OIDC_PORT": "0",
        "OIDC_ACCOUNTS": json.dumps(ACCOUNTS),
        "OIDC_CLIENTS": json.dumps(_clients()),
        "OIDC_RESOURCE": RESOURCE,
    }
    proc = subprocess.Popen(
        ["node", "server.mjs"],
        cwd=PROVIDER,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the OpenID provider did not start (exit {proc.poll()})")
        yield Provider(issuer=json.loads(line)["issuer"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def auth_settings(provider: Provider, **overrides: object) -> dict[str, object]:
    """``GEDRAG_AUTH__*`` for gedrag as the provider's client ``gedrag``."""
    values: dict[str, object] = {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": "gedrag",
        "oidc_client_secret": SECRET,
        "oidc_audience": RESOURCE,
        "oidc_resource": RESOURCE,
        "oidc_role_groups": {"admin": ["it-admins"]},
        "oidc_tenant": "acme",
    }
    return values | overrides


_FORM = re.compile(r'<form method="post" action="([^"]+)"')


def sign_in(authorize_url: str, username: str, password: str, *, until: str = CALLBACK) -> str:
    """Play the browser at the provider: follow its redirects, fill its login form, until it
    sends the browser to ``until``; return that URL (with ``code`` and ``state``)."""
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        response = browser.get(authorize_url)
        for _ in range(20):
            if response.status_code in (302, 303):
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(until):
                    return target
                response = browser.get(target)
                continue
            form = _FORM.search(response.text)
            if response.status_code == 200 and form:
                response = browser.post(
                    urljoin(str(response.url), form.group(1)),
                    data={"username": username, "password": password},
                )
                continue
            raise AssertionError(f"the provider answered {response.status_code}: {response.text}")
    raise AssertionError("the provider never sent the browser back")


def api_token(provider: Provider, username: str, password: str, *, short: bool = False) -> str:
    """An access token for gedrag's API, as a command-line client gets one: the code flow with
    PKCE at the provider, then its token endpoint (client ``gedrag`` or ``gedrag-short``)."""
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import OAuth2Client

    meta = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    verifier = generate_token(64)
    with OAuth2Client(
        provider.client(short),
        SECRET,
        scope="openid email profile groups",
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
    ) as client:
        url, _ = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, resource=RESOURCE
        )
        back = sign_in(url, username, password)
        token = client.fetch_token(
            meta["token_endpoint"],
            authorization_response=back,
            code_verifier=verifier,
            resource=RESOURCE,
        )
    return str(token["access_token"])
