"""Original files, content-addressed on disk: ``<root>/<tenant_id>/<sha[:2]>/<sha>``.

Keyed by tenant as well as content so that one tenant's upload never reveals, shares or frees
another tenant's bytes. Writes go to a temporary file in the same filesystem and are renamed into
place, so a crash never leaves a half-written original under its final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from core.errors import NotFound, StoreUnavailable

COPY_BUFSIZE = 1024 * 1024


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
        """Remove one original; absent is fine (idempotent)."""
        self.path(tenant_id, sha256).unlink(missing_ok=True)

    def all(self) -> set[tuple[str, str]]:
        """Every stored ``(tenant_id, sha256)`` (for orphan checks)."""
        found = set()
        for tenant_dir in self.root.iterdir():
            if tenant_dir.name.startswith(".") or not tenant_dir.is_dir():
                continue
            for f in tenant_dir.glob("*/*"):
                found.add((tenant_dir.name, f.name))
        return found
