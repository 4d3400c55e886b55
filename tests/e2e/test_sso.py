"""Single sign-on against a real OpenID Connect provider on loopback (panva's oidc-provider,
``tests/support/oidc.py``): an administrator signs in through it, the provider's groups claim
makes the HR and Legal groups, payslips are restricted to HR, and Legal never sees them, through
a console session and through the provider's own access tokens on the API. Expired and forged
tokens, a replayed callback and a disabled user are refused with 401, each audited."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from core.settings import AuthSettings
from tests.e2e.conftest import Api
from tests.support.oidc import (
    ACCOUNTS,
    RESOURCE,
    Provider,
    api_token,
    auth_settings,
    oidc_provider,  # noqa: F401  (fixture)
    sign_in,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAYSLIP = b"# Payslip March\n\nMarie Curie, physicist at Globex, is paid 4,200 EUR net.\n"
MEMO = b"# Memo\n\nGlobex moves the Lyon office to the Part-Dieu district in June.\n"
PASSWORDS = {a["username"]: str(a["password"]) for a in ACCOUNTS}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def console_sign_in(api: Api, username: str) -> str:
    """What the console does: to the provider and back; the session comes in the fragment."""
    start = api.client.get("/v1/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302, start.text
    back = urlsplit(sign_in(start.headers["location"], username, PASSWORDS[username]))
    done = api.client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert done.status_code == 302, done.text
    fragment = urlsplit(done.headers["location"]).fragment
    assert fragment.startswith("sso="), fragment
    return fragment[len("sso=") :]


def ingest(api: Api, name: str, data: bytes, collection: str, headers: dict[str, str]) -> str:
    r = api.client.post(
        "/v1/documents",
        headers=headers,
        files={"file": (name, data)},
        data={"collection": collection},
    )
    assert r.status_code == 202, r.text
    assert api.wait(r.json()["job_id"])["state"] == "succeeded"
    doc: str = r.json()["document_id"]
    return doc


def test_sign_in_groups_and_restrictions_through_the_provider(
    make_api: Callable[..., Api],
    oidc_provider: Provider,  # noqa: F811
) -> None:
    api = make_api(None, auth=AuthSettings(**auth_settings(oidc_provider, oidc_leeway_s=0)))
    assert api.client.get("/v1/auth/providers").json() == {
        "password": True,
        "sso": True,
        "sso_tenant": "acme",
    }
    alice = bearer(console_sign_in(api, "alice"))
    me = api.client.get("/v1/auth/me", headers=alice).json()
    assert me["user"]["username"] == "alice" and me["user"]["sso"] is True
    assert set(me["user"]["roles"]) == {"admin", "reader"}  # it-admins → admin, default reader
    groups = {g["name"]: g for g in api.client.get("/v1/groups", headers=alice).json()}
    assert {"HR", "it-admins"} <= set(groups) and groups["HR"]["origin"] == "sso"

    memo = ingest(api, "memo.md", MEMO, "default", alice)
    payslip = ingest(api, "payslip.md", PAYSLIP, "payslips", alice)
    bob_session = bearer(console_sign_in(api, "bob"))  # makes the Legal group
    carol_session = bearer(console_sign_in(api, "carol"))
    r = api.client.put(
        "/v1/collections/payslips/access",
        headers=alice,
        json={"entries": [{"principal": "group:HR", "permission": "read"}]},
    )
    assert r.status_code == 200, r.text

    def listed(who: dict[str, str]) -> set[str]:
        return {d["id"] for d in api.client.get("/v1/documents", headers=who).json()["items"]}

    bob_token = bearer(api_token(oidc_provider, "bob", PASSWORDS["bob"]))
    carol_token = bearer(api_token(oidc_provider, "carol", PASSWORDS["carol"]))
    for bob in (bob_session, bob_token):
        assert listed(bob) == {memo}
        assert api.client.get(f"/v1/documents/{payslip}/content", headers=bob).status_code == 404
    for carol in (carol_session, carol_token):
        assert listed(carol) == {memo, payslip}
    assert api.client.get("/v1/auth/me", headers=bob_token).json()["via"] == "sso:token"

    # Expired: the short client's tokens live 2 s (and gedrag allows no clock skew here).
    short = bearer(api_token(oidc_provider, "carol", PASSWORDS["carol"], short=True))
    assert api.client.get("/v1/documents", headers=short).status_code == 200
    time.sleep(3)
    expired = api.client.get("/v1/documents", headers=short)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    # Forged: the provider's claims and key id, signed with another key.
    claims = {
        "iss": oidc_provider.issuer,
        "aud": RESOURCE,
        "sub": "sub-alice",
        "exp": int(time.time()) + 600,
        "iat": int(time.time()),
        "groups": ["it-admins"],
    }
    forged = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, RSAKey.generate_key(2048))
    refused = api.client.get("/v1/users", headers=bearer(forged))
    assert refused.status_code == 401 and "invalid token" in refused.json()["detail"]

    # A replayed callback: its state was used.
    start = api.client.get("/v1/auth/oidc/login", follow_redirects=False)
    back = urlsplit(sign_in(start.headers["location"], "bob", PASSWORDS["bob"]))
    assert api.client.get(f"{back.path}?{back.query}", follow_redirects=False).status_code == 302
    replay = api.client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert replay.status_code == 401
    assert parse_qs(back.query)["state"]

    # Disabled in gedrag: the provider's valid token no longer opens it.
    carol_id = api.client.get("/v1/auth/me", headers=carol_token).json()["user"]["id"]
    api.client.patch(f"/v1/users/{carol_id}", headers=alice, json={"disabled": True})
    r = api.client.get("/v1/documents", headers=carol_token)
    assert r.status_code == 401 and "disabled" in r.json()["detail"]

    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    acme = rt.catalog.tenants.get("acme").id
    trail = rt.catalog.audit.trail(acme, None, limit=1000)
    sign_ins = [e for e in trail if e.action == "auth.sign_in" and e.outcome == "done"]
    assert {e.actor for e in sign_ins} == {"user:alice", "user:bob", "user:carol"}
    assert all(e.via == "sso" and e.source for e in sign_ins)
    assert any(e.action == "auth.token" and e.actor == "user:carol" for e in trail)  # disabled
    platform = {e.detail["reason"][:13] for e in rt.catalog.audit.trail("", None)}
    assert {"the token exp", "invalid token"} <= platform
    assert rt.catalog.audit.verify().ok
