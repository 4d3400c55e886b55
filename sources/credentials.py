"""Source credentials encrypted at rest: Fernet (AES-128-CBC with HMAC-SHA256, from
``cryptography``) with the key of ``GEDRAG_SOURCES__SECRET_KEY``.

The key may be a Fernet key (32 url-safe base64 bytes) or any other secret, which is hashed
(SHA-256) into one. Older keys (``GEDRAG_SOURCES__PREVIOUS_KEYS``) still decrypt, so a key can
be rotated; credentials are encrypted with the current key whenever they are saved again.
Nothing here logs or returns a secret in clear except :meth:`SecretBox.open` to the sync.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from core.errors import ConfigurationError
from core.settings import SourcesSettings


def _fernet(key: SecretStr) -> Fernet:
    raw = key.get_secret_value().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return Fernet(raw)
    except (binascii.Error, ValueError):
        pass
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))


# The key of a development installation that set none: its credentials are as safe as this
# source file is secret, which is why production refuses it.
DEV_KEY = SecretStr("gedrag development key: never protects production credentials")


class SecretBox:
    """Seals and opens the credentials of sources. ``env`` is the platform's: production
    without ``GEDRAG_SOURCES__SECRET_KEY`` refuses both (:class:`ConfigurationError`)."""

    def __init__(self, settings: SourcesSettings, *, env: str = "dev") -> None:
        key = settings.secret_key
        if key is None and env != "prod":
            key = DEV_KEY
        keys = ([key] if key is not None else []) + list(settings.previous_keys)
        self._fernet = MultiFernet([_fernet(k) for k in keys]) if key is not None else None

    def _box(self) -> MultiFernet:
        if self._fernet is None:
            raise ConfigurationError(
                "set GEDRAG_SOURCES__SECRET_KEY: production stores and reads source credentials "
                "only with a key of its own"
            )
        return self._fernet

    def seal(self, secret: dict[str, str]) -> str:
        """An encrypted token of ``secret`` (``""`` for no secret at all)."""
        if not secret:
            return ""
        return self._box().encrypt(json.dumps(secret, sort_keys=True).encode()).decode()

    def open(self, token: str, *, source: str) -> dict[str, str]:
        """The secret sealed in ``token``; :class:`ConfigurationError` naming the source when
        no configured key opens it."""
        if not token:
            return {}
        try:
            value = json.loads(self._box().decrypt(token.encode()))
        except (InvalidToken, ValueError) as exc:
            raise ConfigurationError(
                f"the credentials of source {source!r} cannot be decrypted: "
                "GEDRAG_SOURCES__SECRET_KEY changed (put the old key in "
                "GEDRAG_SOURCES__PREVIOUS_KEYS) or give the source its password again"
            ) from exc
        if not isinstance(value, dict):
            raise ConfigurationError(f"the credentials of source {source!r} are corrupt")
        return {str(k): str(v) for k, v in value.items()}
