"""Deterministic identifiers: the same input always yields the same id, so writes are upserts.

A document is identified by its tenant, collection and the content hash of its first version;
a version by its document and number. Re-running any step with the same input writes the same rows.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid

# Fixed namespace of gedrag ids; changing it would re-key every stored object.
NAMESPACE = uuid.UUID("6f1c1b52-4f0e-4b8e-9a55-1d5c2d0b7a10")


def stable_uuid(*parts: str) -> str:
    """uuid5 of the parts joined by a separator that cannot appear in them."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


def tenant_id(name: str) -> str:
    return stable_uuid("tenant", name)


def collection_id(tenant: str, name: str) -> str:
    return stable_uuid("collection", tenant, name)


def document_id(tenant: str, collection: str, first_sha256: str) -> str:
    return stable_uuid("document", tenant, collection, first_sha256)


def version_id(document: str, number: int) -> str:
    return stable_uuid("version", document, str(number))


def chunk_id(document: str, content_sha256: str, chunker_fingerprint: str, ordinal: int) -> str:
    """Same document content chunked by the same chunker config gives the same chunk ids.

    The embedding model is not part of it: re-embedding overwrites the same points."""
    return stable_uuid("chunk", document, content_sha256, chunker_fingerprint, str(ordinal))


def canonical_json(value: object, *, ensure_ascii: bool = False) -> str:
    """The one canonical JSON of gedrag: sorted keys, no spaces, non-JSON values as ``str``.
    Hashes of configurations and the catalog's indexed metadata values are taken from it."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii, default=str
    )


def content_hash(value: object) -> str:
    """SHA-256 (hex) of a value's canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def fingerprint(config: dict[str, object]) -> str:
    """A short stable hash of a component's configuration. ASCII-escaped JSON: the form chunk
    ids and collection names have always been derived from."""
    canonical = canonical_json(config, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_id() -> str:
    """A random id, for events that are not idempotent by content (jobs, API keys)."""
    return str(uuid.uuid4())


API_KEY_PREFIX = "gdr"


def new_api_key() -> tuple[str, str]:
    """A fresh API key and its stored hash. Keys carry 256 bits of entropy, so a plain SHA-256
    (not a slow password hash) is safe to store and lets lookups use an index."""
    key = f"{API_KEY_PREFIX}_{secrets.token_urlsafe(32)}"
    return key, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
