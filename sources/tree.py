"""Changes of a tree of files (a folder, a share) from two listings: what the sync holds and
what the tree holds now. Shared by :mod:`sources.folder` and :mod:`sources.smb`.

* A file is listed (``upsert``) once its size, modification time and file id stayed the same
  for ``settle_s`` (it is not being written): the first sighting of a new state is remembered
  in the cursor, and only a later listing at least ``settle_s`` after it takes the file.
* A known file missing from the tree whose exact fingerprint (size, time, file id) appears
  under a new name was moved or renamed: ``move``, taken at once (nothing was written).
* Deletions come after every upsert, and are held while files settle (a copy in progress may
  be the deleted file's new place), for at most ``max(3 × settle_s, 30 s)``.
* Files under a folder that could not be listed are neither new nor deleted: a folder that
  is unreadable for a moment does not delete its documents.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sources.base import Change, Changes, Entry, SourceFailed

# Names never taken: hidden files, office lock files, partial downloads, OS thumbnails.
DEFAULT_IGNORE = (".*", "~$*", "*~", "*.tmp", "*.part", "*.crdownload", "Thumbs.db", "desktop.ini")
# A listing that finds nothing at all where at least this many files were is taken for an
# unmounted or unreachable tree, not for this many deletions.
EMPTY_GUARD = 10
MIN_DELETE_HOLD_S = 30.0


@dataclass(frozen=True)
class FileInfo:
    """A regular file of the tree: its path components under the root, size, modification
    time (ns) and file id (inode; 0 when the tree has none)."""

    path: tuple[str, ...]
    size: int
    mtime_ns: int
    file_id: int = 0

    @property
    def key(self) -> str:
        return "/".join(self.path)

    @property
    def fingerprint(self) -> str:
        return f"{self.size}:{self.mtime_ns}:{self.file_id}"

    def entry(self) -> Entry:
        return Entry(self.key, self.fingerprint, self.size, self.path[:-1])


@dataclass(frozen=True)
class Listing:
    """A walk of the tree: its files, and the folders that could not be read."""

    files: list[FileInfo]
    unreadable: list[tuple[str, ...]]


def ignored(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _state(cursor: str | None) -> tuple[dict[str, list[object]], dict[str, float]]:
    if not cursor:
        return {}, {}
    try:
        data = json.loads(cursor)
        return dict(data.get("pending", {})), dict(data.get("missing", {}))
    except (ValueError, AttributeError, TypeError):
        return {}, {}  # an unreadable cursor costs one more settling wait, nothing else


def _under(key: str, folders: Iterable[tuple[str, ...]]) -> bool:
    parts = tuple(key.split("/"))
    return any(parts[: len(f)] == f for f in folders)


def diff(
    listing: Listing,
    known: Mapping[str, str],
    cursor: str | None,
    *,
    now: float,
    settle_s: float,
    limit: int,
    what: str = "the folder",
) -> Changes:
    """The changes of the tree, at most ``limit`` (see the module's rules); ``now`` in
    seconds (epoch)."""
    if not listing.files and not listing.unreadable and len(known) >= EMPTY_GUARD:
        raise SourceFailed(
            f"{what} lists no file at all where {len(known)} were: taken for an unmounted or "
            "emptied location, nothing is deleted (remove the source to let them go)"
        )
    pending, missing = _state(cursor)
    current = {f.key: f for f in listing.files}
    vanished = {
        k: fp for k, fp in known.items() if k not in current and not _under(k, listing.unreadable)
    }
    # Moves: an exact fingerprint, unique on both sides and carrying a file id.
    gone_by_fp: dict[str, str | None] = {}
    for k, fp in vanished.items():
        gone_by_fp[fp] = None if fp in gone_by_fp else k
    new_fps: dict[str, int] = {}
    for f in listing.files:
        if f.key not in known:
            new_fps[f.fingerprint] = new_fps.get(f.fingerprint, 0) + 1

    moves: list[Change] = []
    ready: list[Change] = []
    next_pending: dict[str, list[object]] = {}
    wait: float | None = None
    for key in sorted(current):
        f = current[key]
        fp = f.fingerprint
        if known.get(key) == fp:
            continue
        old = gone_by_fp.get(fp)
        if key not in known and old and f.file_id and new_fps.get(fp) == 1:
            moves.append(Change("move", f.entry(), previous_key=old))
            del vanished[old]
            continue
        seen = pending.get(key)
        since = float(seen[1]) if seen and seen[0] == fp else now  # type: ignore[arg-type]
        left = settle_s - (now - since)
        if left <= 0:
            ready.append(Change("upsert", f.entry()))
        next_pending[key] = [fp, since]
        if left > 0:
            wait = left if wait is None else min(wait, left)
    settling = sum(1 for k in next_pending if k not in {c.entry.key for c in ready})

    hold_s = max(3 * settle_s, MIN_DELETE_HOLD_S)
    deletes: list[Change] = []
    next_missing: dict[str, float] = {}
    for key in sorted(vanished):
        since = float(missing.get(key, now))
        if settling and now - since < hold_s:
            next_missing[key] = since
            left = hold_s - (now - since)
            wait = left if wait is None else min(wait, left)
            continue
        deletes.append(Change("delete", Entry(key, vanished[key])))
        next_missing[key] = since

    ordered = moves + ready + deletes
    taken = ordered[:limit]
    for change in taken:  # handled now: the sync holds them from here on
        next_pending.pop(change.entry.key, None)
        next_missing.pop(change.entry.key, None)
    state = json.dumps({"pending": next_pending, "missing": next_missing}, sort_keys=True)
    return Changes(taken, state, more=len(ordered) > limit, wait_s=wait, settling=settling)
