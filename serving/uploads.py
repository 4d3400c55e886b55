"""Turning uploaded files and form fields into validated input, before anything is stored.

Validation happens on the spooled upload only: a rejected file leaves no row, blob or job.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass
from typing import Any, BinaryIO

from core import media
from core.errors import EmptyUpload, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ingestion.service import Incoming

MAX_FILENAME = 255
MAX_TAGS = 50
MAX_TAG_LEN = 100
MAX_METADATA_BYTES = 64 * 1024
READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class CheckedFile(Incoming):
    """An upload that passed every check: its bytes are in ``source`` (seekable)."""


def check_file(source: BinaryIO, raw_name: str | None, *, max_bytes: int) -> CheckedFile:
    """Size, emptiness and type (from content), with a safe file name; raises 413/422/415."""
    digest = hashlib.sha256()
    size = 0
    source.seek(0)
    while block := source.read(READ_CHUNK):
        size += len(block)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"{safe_filename(raw_name)!r} is larger than the {max_bytes} byte limit"
            )
        digest.update(block)
    name = safe_filename(raw_name)
    if size == 0:
        raise EmptyUpload(f"{name!r} is empty", field="file")
    try:
        media_type = media.check(source, name)
    except UnsupportedMediaType as exc:
        raise UnsupportedMediaType(f"{exc.detail}; supported: {media.supported_list()}") from exc
    source.seek(0)
    return CheckedFile(source, name, media_type, digest.hexdigest(), size)


def safe_filename(raw: str | None) -> str:
    """The last path component, printable, NFC, at most 255 characters with its extension kept.

    The name is only ever displayed and sent back in Content-Disposition: originals are stored
    under their hash, so no name can reach the filesystem.
    """
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*').strip(" .")
    if len(name) > MAX_FILENAME:
        stem, ext = os.path.splitext(name)
        ext = ext[:16]
        name = stem[: MAX_FILENAME - len(ext)] + ext
    return name or "upload"


def parse_tags(values: list[str] | None) -> list[str]:
    """Tags from repeated form fields, comma-separated lists and/or JSON lists
    (``["a", "b"]``, what a JSON client sends); trimmed, unique, sorted."""
    tags = {t.strip() for v in values or [] for t in _tag_values(v) if t.strip()}
    bad = [t for t in tags if len(t) > MAX_TAG_LEN or any(not c.isprintable() for c in t)]
    if bad:
        raise InvalidInput(
            f"tag {bad[0][:40]!r} is invalid (1-{MAX_TAG_LEN} printable)", field="tags"
        )
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags per document", field="tags")
    return sorted(tags)


def _tag_values(value: str) -> list[str]:
    if not value.lstrip().startswith("["):
        return value.split(",")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"tags look like a JSON list but are not valid JSON: {exc.msg} at char {exc.pos}",
            field="tags",
        ) from exc
    if not isinstance(parsed, list) or not all(isinstance(t, str) for t in parsed):
        raise InvalidInput("tags as JSON must be a list of strings", field="tags")
    return parsed


def parse_metadata(raw: str | None, field: str = "metadata") -> dict[str, Any]:
    """A JSON object from a form or query field; 422 naming the field otherwise."""
    if raw is None or not raw.strip():
        return {}
    if len(raw.encode()) > MAX_METADATA_BYTES:
        raise InvalidInput(f"{field} is larger than {MAX_METADATA_BYTES} bytes", field=field)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{field} is not valid JSON: {exc.msg} at char {exc.pos}", field=field
        ) from exc
    return check_metadata(value, field)


def check_metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    for key in value:
        if not key or len(key) > 100:
            raise InvalidInput(f"{field} keys must be 1-100 characters", field=field)
    if len(json.dumps(value).encode()) > MAX_METADATA_BYTES:
        raise InvalidInput(f"{field} is larger than {MAX_METADATA_BYTES} bytes", field=field)
    return value
