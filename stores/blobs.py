"""Original files, content-addressed on disk: ``<root>/<tenant_id>/<sha[:2]>/<sha>``, and what
is derived from each (page previews, a searchable rendition) beside it in ``<sha>.derived/``,
made once and removed with the original.

Keyed by tenant as well as content so that one tenant's upload never reveals, shares or frees
another tenant's bytes. Writes go to a temporary file in the same filesystem and are renamed into
place, so a crash never leaves a half-written original under its final name.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from core.errors import NotFound, StoreUnavailable

COPY_BUFSIZE = 1024 * 1024
DERIVED = ".derived"  # suffix of the folder beside an original that holds what derives from it
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,100}")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, tenant_id: str, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return self.root / tenant_id / sha256[:2] / sha256

    def put(self, tenant_id: str, sha256: str, source: BinaryIO) -> Path:
        """Store the bytes read from ``source`` (whose sha256 the caller computed); idempotent."""
        target = self.path(tenant_id, sha256)
        if target.exists():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._tmp)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, COPY_BUFSIZE)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write original file: {exc}") from exc
        return target

    def open(self, tenant_id: str, sha256: str) -> BinaryIO:
        """The original, open for reading; :class:`NotFound` when it is gone. An open file
        stays readable after a delete removes its name (POSIX), so a download that opened it
        completes while the document is deleted."""
        try:
            return self.path(tenant_id, sha256).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"original file {sha256} is missing") from exc

    def read(self, tenant_id: str, sha256: str) -> bytes:
        try:
            return self.path(tenant_id, sha256).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"original file {sha256} is missing") from exc

    def delete(self, tenant_id: str, sha256: str) -> None:
        """Remove one original and what was derived from it; absent is fine (idempotent)."""
        self.path(tenant_id, sha256).unlink(missing_ok=True)
        shutil.rmtree(self._derived_dir(tenant_id, sha256), ignore_errors=True)

    def _derived_dir(self, tenant_id: str, sha256: str) -> Path:
        original = self.path(tenant_id, sha256)
        return original.with_name(original.name + DERIVED)

    def derived(self, tenant_id: str, sha256: str, name: str) -> bytes | None:
        """A file derived from the original (``name`` like ``page-3-thumb.png``), or None when
        it was not made yet."""
        try:
            return (self._derived_dir(tenant_id, sha256) / _checked(name)).read_bytes()
        except FileNotFoundError:
            return None

    def put_derived(self, tenant_id: str, sha256: str, name: str, data: bytes) -> None:
        """Keep a derived file (atomically: a reader never sees half of it). Refused once the
        original is gone (a purge raced the rendering): nothing outlives its original."""
        folder = self._derived_dir(tenant_id, sha256)
        if not self.path(tenant_id, sha256).exists():
            raise NotFound(f"original file {sha256} is missing")
        try:
            folder.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._tmp)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, folder / _checked(name))
        except OSError as exc:
            raise StoreUnavailable(f"cannot write a derived file: {exc}") from exc

    def all(self) -> set[tuple[str, str]]:
        """Every stored ``(tenant_id, sha256)`` (for orphan checks)."""
        found = set()
        for tenant_dir in self.root.iterdir():
            if tenant_dir.name.startswith(".") or not tenant_dir.is_dir():
                continue
            for f in tenant_dir.glob("*/*"):
                if not f.name.endswith(DERIVED):
                    found.add((tenant_dir.name, f.name))
        return found


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a derived file name: {name!r}")
    return name
