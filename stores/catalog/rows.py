"""Conversions between the catalog's rows and frozen domain objects, and the small helpers the
repositories share (names, cursors, metadata index rows, chunk columns)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from core import ids
from core.domain import (
    ApiKeyInfo,
    ChunkRecord,
    Collection,
    Document,
    DocumentStatus,
    Job,
    JobKind,
    JobState,
    Tenant,
    Version,
)
from core.errors import InvalidInput
from stores.catalog.models import (
    ApiKeyRow,
    ChunkRow,
    CollectionRow,
    DocumentRow,
    JobRow,
    MetaRow,
    StagedChunkRow,
    TenantRow,
    VersionRow,
)

T = TypeVar("T")
# Metadata values longer than this are stored but not indexed for filtering (column width).
META_INDEX_MAX = 500


def clean_name(name: str, field: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"{field} must be 1-100 printable characters", field=field)
    return name


COLLECTION_NAME_RULE = (
    "1-100 characters: letters, digits, spaces, '-', '_' and '.', beginning with a letter or "
    "a digit (no '/')"
)


def collection_name(name: str, field: str) -> str:
    """A new collection's name, trimmed; :class:`InvalidInput` stating the rule otherwise.

    Names appear in URL paths (``DELETE /v1/collections/{name}``) and in model ids
    (``gedrag/<collection>``): a '/' made a collection that could not be deleted. Collections
    created before this rule keep their names and stay usable and deletable."""
    name = name.strip()
    ok = (
        0 < len(name) <= 100 and name[0].isalnum() and all(c.isalnum() or c in " -_." for c in name)
    )
    if not ok:
        raise InvalidInput(
            f"{field} {name[:100]!r} is invalid: {COLLECTION_NAME_RULE}", field=field
        )
    return name


def escape_like(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(created_at: datetime, doc_id: str) -> str:
    raw = f"{created_at.isoformat()}|{doc_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, doc_id = raw.split("|", 1)
        return datetime.fromisoformat(created), doc_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


def meta_rows(metadata: dict[str, Any]) -> list[MetaRow]:
    rows = []
    for key, value in metadata.items():
        encoded = ids.canonical_json(value)
        if len(key) <= 100 and len(encoded) <= META_INDEX_MAX:
            rows.append(MetaRow(key=key, value=encoded))
    return rows


def tenant(r: TenantRow) -> Tenant:
    return Tenant(id=r.id, name=r.name, created_at=r.created_at)


def api_key(r: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        prefix=r.prefix,
        created_at=r.created_at,
        revoked_at=r.revoked_at,
        user_id=r.user_id,
        scopes=tuple(r.scopes or ()),
        expires_at=r.expires_at,
    )


def collection(r: CollectionRow, count: int) -> Collection:
    return Collection(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        description=r.description,
        created_at=r.created_at,
        document_count=count,
    )


def version(r: VersionRow) -> Version:
    return Version(
        id=r.id,
        document_id=r.document_id,
        number=r.number,
        sha256=r.sha256,
        size_bytes=r.size_bytes,
        media_type=r.media_type,
        filename=r.filename,
        status=DocumentStatus(r.status),
        chunk_count=r.chunk_count,
        entity_count=r.entity_count,
        created_at=r.created_at,
        error=_failure(r),
        warnings=_warnings(r),
    )


def _warnings(r: VersionRow) -> tuple[str, ...]:
    """What the version's last ingestion job warned about."""
    ingests = [j for j in r.jobs if j.kind == JobKind.INGEST]
    return tuple(ingests[-1].warnings or ()) if ingests else ()


def _failure(r: VersionRow) -> str | None:
    """Why a failed version failed: its last job's error (None unless it failed)."""
    if r.status != DocumentStatus.FAILED:
        return None
    return next((j.error for j in reversed(r.jobs) if j.error), None)


def document(r: DocumentRow) -> Document:
    return Document(
        id=r.id,
        tenant_id=r.tenant_id,
        collection=r.collection.name,
        title=r.title,
        status=DocumentStatus(r.status),
        current_version=r.current_version,
        tags=[t.tag for t in r.tags],
        metadata=dict(r.meta),
        created_at=r.created_at,
        updated_at=r.updated_at,
        versions=[version(v) for v in r.versions],
        active_version=r.active_version,
    )


# The columns a chunk row (the catalog's, or a staged one) shares with a chunk record.
CHUNK_COLUMNS = (
    "id",
    "tenant_id",
    "document_id",
    "version_id",
    "ordinal",
    "text",
    "section_path",
    "page_start",
    "page_end",
    "language",
    "token_count",
)
IN_BATCH = 500  # values per IN (...): well under SQLite's bound-parameter limit (32,766)


def in_batches(items: Iterable[T], size: int = IN_BATCH) -> list[list[T]]:
    """``items`` in lists small enough for one ``IN (...)`` or one multi-row insert."""
    seq = list(items)
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def chunk_columns(c: ChunkRecord, version_id: str) -> dict[str, Any]:
    """A chunk record as the columns of a chunk row, for this version."""
    return {f: getattr(c, f) for f in CHUNK_COLUMNS} | {
        "version_id": version_id,
        "section_path": list(c.section_path),
    }


def chunk_record(r: ChunkRow | StagedChunkRow) -> ChunkRecord:
    return ChunkRecord(
        **{f: getattr(r, f) for f in CHUNK_COLUMNS} | {"section_path": tuple(r.section_path)}
    )


def job(r: JobRow) -> Job:
    return Job(
        id=r.id,
        tenant_id=r.tenant_id,
        kind=JobKind(r.kind),
        document_id=r.document_id,
        version_id=r.version_id,
        state=JobState(r.state),
        stage=r.stage,
        progress=r.progress,
        error=r.error,
        attempts=r.attempts,
        created_at=r.created_at,
        updated_at=r.updated_at,
        warnings=tuple(r.warnings or ()),
    )
