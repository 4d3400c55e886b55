"""The blob store keeps what derives from an original (page images, a searchable rendition)
beside it, and removes it with the original: nothing outlives a purge."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from core.errors import NotFound
from stores.blobs import BlobStore

pytestmark = pytest.mark.unit


def stored(blobs: BlobStore, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    blobs.put("t1", sha, io.BytesIO(data))
    return sha


def test_derived_files_are_kept_beside_their_original_and_leave_with_it(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = stored(blobs, b"scan")
    assert blobs.derived("t1", sha, "page-1-thumb.png") is None
    blobs.put_derived("t1", sha, "page-1-thumb.png", b"png")
    assert blobs.derived("t1", sha, "page-1-thumb.png") == b"png"
    assert blobs.derived("t2", sha, "page-1-thumb.png") is None  # another tenant's
    assert blobs.all() == {("t1", sha)}  # derived files are not originals
    blobs.delete("t1", sha)
    assert blobs.derived("t1", sha, "page-1-thumb.png") is None
    assert not any(p.name.endswith(".derived") for p in tmp_path.rglob("*"))


def test_nothing_is_derived_from_a_missing_original_or_under_a_strange_name(
    tmp_path: Path,
) -> None:
    blobs = BlobStore(tmp_path)
    sha = stored(blobs, b"scan")
    blobs.delete("t1", sha)
    with pytest.raises(NotFound):
        blobs.put_derived("t1", sha, "page-1-page.png", b"png")
    sha = stored(blobs, b"other")
    for name in ("../escape", "Page.png", "", ".hidden", "a/b"):
        with pytest.raises(ValueError, match="not a derived file name"):
            blobs.put_derived("t1", sha, name, b"x")
