"""The provider's keys are fetched again for an unknown key id at most once a minute: tokens
with made-up key ids cannot make every request a request to the identity provider."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from core.errors import Unauthorized
from core.settings import AuthSettings
from serving import oidc

pytestmark = pytest.mark.unit

ISSUER = "https://idp.example"


def test_unknown_key_ids_refetch_the_keys_at_most_once_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = RSAKey.generate_key(2048, parameters={"kid": "real"})
    fetched: list[str] = []

    def get(url: str) -> dict[str, Any]:
        fetched.append(url)
        if url.endswith("openid-configuration"):
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
        return {"keys": [real.as_dict(private=False)]}

    client = oidc.OidcClient(AuthSettings(oidc_issuer=ISSUER, oidc_client_id="gedrag"))
    monkeypatch.setattr(client, "_get", get)
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    claims = {"iss": ISSUER, "aud": "gedrag", "sub": "s", "exp": int(time.time()) + 60}
    good = jwt.encode({"alg": "RS256", "kid": "real"}, claims, real)
    assert client.verify(good)["sub"] == "s"
    forger = RSAKey.generate_key(2048)
    for i in range(5):
        forged = jwt.encode({"alg": "RS256", "kid": f"made-up-{i}"}, claims, forger)
        with pytest.raises(Unauthorized):
            client.verify(forged)
    assert fetched.count(f"{ISSUER}/jwks") == 1  # the first fetch only, within the minute
    now[0] += oidc.JWKS_REFRESH_S
    with pytest.raises(Unauthorized):
        client.verify(jwt.encode({"alg": "RS256", "kid": "rotated"}, claims, forger))
    assert fetched.count(f"{ISSUER}/jwks") == 2  # a rotation is still picked up
