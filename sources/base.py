"""The ``Source`` role: a place documents come from by themselves, listed by changes since a
cursor and fetched one item at a time.

Three implementations sit side by side: :class:`sources.folder.FolderSource` (a folder on the
server's disk), :class:`sources.smb.SmbSource` (an SMB/CIFS share) and
:class:`sources.imap.ImapSource` (an IMAP mailbox). ``sources.sync`` drives them; it alone
registers documents (through ``ingestion.service``) and records every item's outcome.

Errors, all rooted in :mod:`core.errors`: :class:`SourceFailed` (the source as a whole cannot be
read as configured: credentials refused, folder missing; shown as failing and retried with
backoff), :class:`SourceUnavailable` (a transient failure of the server or the network: the
same, expected to clear by itself), :class:`ItemFailed` (one item cannot be taken; the others
go on).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Literal, Protocol, cast

from core.errors import GedragError, TransientError

# A spooled item stays in memory up to this size, then moves to a temporary file.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
READ_BLOCK = 1024 * 1024

ChangeKind = Literal["upsert", "delete", "move"]


class SourceFailed(GedragError):
    """The source cannot be read as configured (credentials refused, folder or mailbox
    missing): every item waits until it is fixed."""

    code = "source_failed"


class SourceUnavailable(TransientError):
    """The source's server or network failed for now (refused connection, timeout)."""

    code = "source_unavailable"


class ItemFailed(GedragError):
    """One item cannot be taken (vanished, changed while read, undecodable). ``retry``: the
    item may be taken once it changes again at the source (it changed or vanished while
    being read), rather than being refused for good."""

    code = "item_failed"

    def __init__(self, detail: str, *, retry: bool = False) -> None:
        super().__init__(detail)
        self.retry = retry


@dataclass(frozen=True)
class Entry:
    """An item as a listing shows it, before its bytes are read.

    ``key`` is stable for the item within its source (a relative path ``a/b.pdf``, a mail
    ``<uidvalidity>:<uid>``); ``fingerprint`` changes whenever the content may have changed
    (size, modification time, file id); ``folder`` holds the sub-folders the item sits in."""

    key: str
    fingerprint: str
    size: int | None = None
    folder: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """One change since the cursor. ``upsert``: the item is new or changed; ``delete``: a
    known item is gone; ``move``: a known item (``previous_key``) is now at ``entry.key`` with
    the same content. ``cursor``: the cursor to save once this change is handled (sources
    whose cursor advances item by item), else ``None``."""

    kind: ChangeKind
    entry: Entry
    previous_key: str | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class Changes:
    """What :meth:`Source.changes` found: at most ``limit`` changes, in the order to handle
    them; ``cursor`` to save once they are all handled; ``more`` when changes beyond the limit
    are ready now; ``wait_s`` when items are still settling (being written) and should be
    asked for again after that long; ``settling`` counts them."""

    items: list[Change]
    cursor: str | None
    more: bool = False
    wait_s: float | None = None
    settling: int = 0


@dataclass
class Part:
    """One document an item holds: a file is one part; a mail one per attachment (and its
    body when asked). ``name`` tells parts of one item apart (``""`` for a file). A part that
    cannot be taken has ``error`` and no bytes."""

    name: str
    filename: str
    data: BinaryIO | None = None
    size: int = 0
    sha256: str = ""
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def close(self) -> None:
        if self.data is not None:
            self.data.close()


@dataclass
class Fetched:
    """An item's bytes, as parts; ``note`` says why an item holds no part (a mail without
    attachment). Close it once its parts are registered (temporary files)."""

    parts: list[Part]
    note: str = ""

    def close(self) -> None:
        for part in self.parts:
            part.close()


class Source(Protocol):
    """A place documents come from.

    Semantics every implementation keeps (``tests/support/source_conformance.py``):

    * :meth:`changes` lists what changed since ``cursor`` (``None``: from the start), judged
      against ``known`` (``key → fingerprint`` of the items the sync already holds from this
      source). The same arguments give the same changes: nothing is consumed by listing. An
      item being written is not listed until it has stopped changing. A known item whose
      fingerprint is unchanged is never listed again. Deletions come after every upsert of
      the batch. At most ``limit`` changes; ``more`` says others are ready.
    * :meth:`fetch` reads one listed item: its parts, each spooled and hashed (SHA-256), each
      at most the source's byte limit (a larger one is a part with ``error``, never read
      whole). :class:`ItemFailed` when this item cannot be read; the source's own errors
      when the source as a whole fails.
    * :meth:`acknowledge` tells the source the item was handled (``ok``: every part taken or
      already there): a mailbox moves or flags the mail; a folder does nothing. Called once
      per listed change, after its outcome is recorded.
    * :meth:`close` releases connections; the source is not used after it.
    """

    def changes(self, cursor: str | None, known: Mapping[str, str], limit: int) -> Changes: ...

    def fetch(self, entry: Entry) -> Fetched: ...

    def acknowledge(self, entry: Entry, ok: bool) -> None: ...

    def close(self) -> None: ...


# -- helpers the implementations share -----------------------------------------------------


def spool(
    blocks: Iterable[bytes], *, name: str, filename: str, max_bytes: int, **extra: Any
) -> Part:
    """A part from a stream of blocks: spooled (memory, then a temporary file) and hashed in
    one pass; stopped with ``error`` as soon as it grows past ``max_bytes``, its bytes then
    discarded."""
    digest = hashlib.sha256()
    size = 0
    out = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES))  # noqa: SIM115
    try:
        for block in blocks:
            size += len(block)
            if size > max_bytes:
                out.close()
                return Part(
                    name,
                    filename,
                    size=size,
                    error=too_large(filename, f"more than {max_bytes}", max_bytes),
                    **extra,
                )
            digest.update(block)
            out.write(block)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return Part(name, filename, data=out, size=size, sha256=digest.hexdigest(), **extra)


def blocks_of(stream: BinaryIO | IO[bytes], block: int = READ_BLOCK) -> Iterable[bytes]:
    while data := stream.read(block):
        yield data


def too_large(filename: str, size: int | str, max_bytes: int) -> str:
    """The cause of a refusal for size, worded like the upload API's (413)."""
    return (
        f"{filename!r} is larger than the {max_bytes} byte limit ({size} bytes; "
        "GEDRAG_API__MAX_UPLOAD_BYTES)"
    )
