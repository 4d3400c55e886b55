"""Single sign-on with an OpenID Connect provider: the authorization code flow with PKCE for
the console (authlib's OAuth 2 client), ID and access tokens verified against the provider's
published keys (joserfc, which authlib builds on).

The provider's metadata and keys are fetched once and kept; a token signed with a key id not
seen yet fetches the keys again once (the provider rotated them). Every check a relying party
owes is made here: signature and algorithm, issuer, audience, expiry (with
``GEDRAG_AUTH__OIDC_LEEWAY_S`` of clock skew), and the nonce of the sign-in that asked for the
ID token. Anything wrong is :class:`Unauthorized`; a provider that does not answer is
:class:`ProviderUnavailable` (503).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from core.access import Role
from core.errors import ConfigurationError, TransientError, Unauthorized
from core.settings import AuthSettings

# Asymmetric algorithms only: "none" and HMAC (which a forger could sign with a public key).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")


# A token naming an unknown key id refetches the provider's keys at most this often.
JWKS_REFRESH_S = 60.0


class ProviderUnavailable(TransientError):
    """The identity provider does not answer."""

    code = "identity_provider_unavailable"


@dataclass(frozen=True)
class SignIn:
    """What the provider says about the person signing in."""

    issuer: str
    subject: str
    username: str
    email: str
    display_name: str
    groups: tuple[str, ...]
    roles: frozenset[Role]

    def profile(self) -> dict[str, Any]:
        """As :meth:`stores.catalog.people.PeopleRepository.sso_user` takes it."""
        return dataclasses.asdict(self)


class OidcClient:
    """One provider, as ``GEDRAG_AUTH__OIDC_*`` names it."""

    def __init__(self, settings: AuthSettings, *, prod: bool = False) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id):
            raise ConfigurationError(
                "single sign-on needs GEDRAG_AUTH__OIDC_ISSUER and GEDRAG_AUTH__OIDC_CLIENT_ID"
            )
        if prod and not settings.oidc_issuer.startswith("https://"):
            raise ConfigurationError("GEDRAG_ENV=prod needs an https:// GEDRAG_AUTH__OIDC_ISSUER")
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.audience = settings.oidc_audience or settings.oidc_client_id
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_at = -JWKS_REFRESH_S  # when the keys were last fetched (monotonic)

    # -- the provider ----------------------------------------------------------------------

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=self.settings.oidc_timeout_s)
            response.raise_for_status()
            found: dict[str, Any] = response.json()
            return found
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"identity provider unavailable: {exc}") from exc

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                found = self._get(f"{self.issuer}/.well-known/openid-configuration")
                if found.get("issuer", "").rstrip("/") != self.issuer:
                    raise ConfigurationError(
                        f"the provider at {self.issuer} names itself {found.get('issuer')!r}"
                    )
                self._metadata = found
            return self._metadata

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        """The provider's keys; ``refresh`` (a token names a key id we lack: the provider
        rotated its keys) fetches them again at most once a minute, so tokens with made-up key
        ids cannot turn every request into a request to the provider."""
        uri = self.metadata()["jwks_uri"]
        with self._lock:
            now = time.monotonic()
            stale = refresh and now - self._keys_at >= JWKS_REFRESH_S
            if self._keys is None or stale:
                self._keys = KeySet.import_key_set(self._get(uri))  # type: ignore[arg-type]
                self._keys_at = now
            return self._keys

    def _client(self, redirect_uri: str) -> OAuth2Client:
        secret = self.settings.oidc_client_secret
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=None if secret is None else secret.get_secret_value(),
            scope=self.settings.oidc_scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self.settings.oidc_timeout_s,
        )

    # -- the console's sign-in -------------------------------------------------------------

    def authorization_url(
        self, *, state: str, nonce: str, code_verifier: str, redirect_uri: str
    ) -> str:
        extra = {"resource": self.settings.oidc_resource} if self.settings.oidc_resource else {}
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.metadata()["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
                **extra,
            )
        return str(url)

    def exchange(self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str) -> SignIn:
        """Trade the authorization code for tokens and read the verified ID token."""
        extra = {"resource": self.settings.oidc_resource} if self.settings.oidc_resource else {}
        try:
            with self._client(redirect_uri) as client:
                token = client.fetch_token(
                    self.metadata()["token_endpoint"],
                    code=code,
                    code_verifier=code_verifier,
                    **extra,
                )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"identity provider unavailable: {exc}") from exc
        except Exception as exc:  # authlib's OAuthError and friends: the provider refused
            raise Unauthorized(f"the identity provider refused the sign-in: {exc}") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthorized("the identity provider sent no ID token")
        claims = self.verify(id_token, audience=self.client_id, nonce=nonce)
        return self.sign_in(claims)

    # -- tokens ----------------------------------------------------------------------------

    def verify(
        self, token: str, *, audience: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The claims of a token the provider signed for ``audience`` (default: the API's);
        :class:`Unauthorized` saying what is wrong otherwise."""
        try:
            try:
                decoded = jwt.decode(token, self._key_set(), algorithms=list(ALGORITHMS))
            except InvalidKeyIdError:
                decoded = jwt.decode(
                    token, self._key_set(refresh=True), algorithms=list(ALGORITHMS)
                )
            options: dict[str, Any] = {
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": audience or self.audience},
                "exp": {"essential": True},
                "sub": {"essential": True},
            }
            if nonce is not None:
                options["nonce"] = {"essential": True, "value": nonce}
            jwt.JWTClaimsRegistry(leeway=self.settings.oidc_leeway_s, **options).validate(
                decoded.claims
            )
        except ExpiredTokenError as exc:
            raise Unauthorized("the token expired: sign in again") from exc
        except (JoseError, ValueError) as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        return dict(decoded.claims)

    def sign_in(self, claims: dict[str, Any]) -> SignIn:
        """Who the claims name, with the roles their groups grant."""
        raw = claims.get(self.settings.oidc_groups_claim) or []
        groups = tuple(sorted({str(g) for g in raw})) if isinstance(raw, list) else ()
        roles = (
            {Role(self.settings.oidc_default_role)} if self.settings.oidc_default_role else set()
        )
        for role, granting in self.settings.oidc_role_groups.items():
            if set(granting) & set(groups):
                roles.add(Role(role))
        sub = str(claims["sub"])
        return SignIn(
            issuer=self.issuer,
            subject=sub,
            username=str(claims.get("preferred_username") or claims.get("email") or sub),
            email=str(claims.get("email") or ""),
            display_name=str(claims.get("name") or ""),
            groups=groups,
            roles=frozenset(roles),
        )


def looks_like_jwt(token: str) -> bool:
    """A compact JWS (three base64url parts): a provider's token, not a gedrag key."""
    return token.count(".") == 2 and token.startswith("ey")
