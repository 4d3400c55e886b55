"""A folder on the server's disk (a scanner's output, an export) as a :class:`Source`.

Each listing walks the folder (``os.scandir``: ~1 ms per 100 files), never following symbolic
links (a link could lead out of the folder) and skipping the names of ``ignore``; the changes
come from :func:`sources.tree.diff`. A file is read in one pass (spooled, hashed), then
checked again: one that changed or vanished while it was read is not taken this time.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sources.base import (
    Changes,
    Entry,
    Fetched,
    ItemFailed,
    Part,
    SourceFailed,
    blocks_of,
    spool,
    too_large,
)
from sources.tree import DEFAULT_IGNORE, FileInfo, Listing, diff, ignored


def _no_follow(path: str, flags: int) -> int:
    """O_NOFOLLOW: the name may have been swapped for a link since the listing."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


class FolderSource:
    """The files under ``root`` (sub-folders included)."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        settle_s: float,
        ignore: Sequence[str] = DEFAULT_IGNORE,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.settle_s = settle_s
        self.ignore = tuple(ignore)

    def changes(self, cursor: str | None, known: Mapping[str, str], limit: int) -> Changes:
        return diff(
            self.listing(),
            known,
            cursor,
            now=time.time(),
            settle_s=self.settle_s,
            limit=limit,
            what=f"the folder {str(self.root)!r}",
        )

    def listing(self) -> Listing:
        """Every regular file under the root; :class:`SourceFailed` when the root itself
        cannot be read."""
        try:
            info = self.root.stat()
        except FileNotFoundError as exc:
            raise SourceFailed(f"the folder {str(self.root)!r} does not exist") from exc
        except OSError as exc:
            raise SourceFailed(f"the folder {str(self.root)!r} cannot be read: {exc}") from exc
        if not stat.S_ISDIR(info.st_mode):
            raise SourceFailed(f"{str(self.root)!r} is not a folder")
        files: list[FileInfo] = []
        unreadable: list[tuple[str, ...]] = []
        stack: list[tuple[str, ...]] = [()]
        while stack:
            prefix = stack.pop()
            try:
                with os.scandir(self.root.joinpath(*prefix)) as found:
                    entries = list(found)
            except OSError as exc:
                if not prefix:
                    raise SourceFailed(
                        f"the folder {str(self.root)!r} cannot be read: {exc.strerror}"
                    ) from exc
                unreadable.append(prefix)
                continue
            for e in entries:
                if ignored(e.name, self.ignore):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished between the listing and its stat
                path = (*prefix, e.name)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(path)
                elif stat.S_ISREG(st.st_mode):
                    files.append(FileInfo(path, st.st_size, st.st_mtime_ns, st.st_ino))
        return Listing(files, unreadable)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ItemFailed(f"{key!r} is not a path inside the folder")
        return self.root.joinpath(*parts)

    def fetch(self, entry: Entry) -> Fetched:
        path = self._path(entry.key)
        name = path.name
        try:
            before = os.stat(path, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise ItemFailed(f"{name!r} vanished before it could be read", retry=True) from exc
        except OSError as exc:
            raise ItemFailed(f"{name!r} cannot be read: {exc.strerror}", retry=True) from exc
        if not stat.S_ISREG(before.st_mode):
            raise ItemFailed(f"{name!r} is no longer a regular file", retry=True)
        if before.st_size > self.max_bytes:
            return Fetched(
                [
                    Part(
                        "",
                        name,
                        size=before.st_size,
                        error=too_large(name, before.st_size, self.max_bytes),
                    )
                ]
            )
        try:
            stream = open(path, "rb", opener=_no_follow)  # noqa: SIM115 - closed just below
        except FileNotFoundError as exc:
            raise ItemFailed(f"{name!r} vanished before it could be read", retry=True) from exc
        except OSError as exc:
            raise ItemFailed(f"{name!r} cannot be read: {exc.strerror}", retry=True) from exc
        with stream:
            part = spool(blocks_of(stream), name="", filename=name, max_bytes=self.max_bytes)
        self._check_unchanged(path, before, part)
        return Fetched([part])

    @staticmethod
    def _check_unchanged(path: Path, before: os.stat_result, part: Part) -> None:
        """Refuse what changed or vanished while it was read: its bytes may be half old, half
        new (or cut short); the next listing sees its new state and takes it once settled."""
        try:
            after = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            part.close()
            raise ItemFailed(
                f"{path.name!r} vanished while it was read: nothing taken", retry=True
            ) from None
        same = (after.st_size, after.st_mtime_ns, after.st_ino) == (
            before.st_size,
            before.st_mtime_ns,
            before.st_ino,
        )
        if part.error is None and (not same or part.size != before.st_size):
            part.close()
            raise ItemFailed(
                f"{path.name!r} changed while it was read: nothing taken (it is taken once it "
                "stops changing)",
                retry=True,
            )

    def acknowledge(self, entry: Entry, ok: bool) -> None:
        """Nothing to do: the folder is left as it is (the sync remembers what it took)."""

    def close(self) -> None:
        """Nothing held between calls."""
