"""Source conformance: what every ``sources.base.Source`` owes the sync.

A mixin in the manner of the other ``*_conformance.py`` suites: a subclass named ``Test...``
provides the ``world`` fixture, a :class:`SourceWorld` (a place items are put in and taken out
of at the source's end: a folder, a share, a mailbox, and sources opened on it); every test
here then drives the source through its Protocol only, as ``sources.sync`` does.

:class:`TreeConformance` adds what sources of files (a folder, a share) owe on top: changes,
moves, deletions, settling, unreadable folders. ``tests/unit/test_source_conformance.py``
runs both on ``FolderSource``; ``tests/integration/test_source_conformance.py`` on
``SmbSource`` (Samba) and, the common part, on ``ImapSource`` (Dovecot).
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod

import pytest

from sources.base import Change, Changes, ItemFailed, Source, SourceFailed, SourceUnavailable

LIMIT = 50


class SourceWorld(ABC):
    """The far side of a source: put items in, take them away, open sources on it."""

    @abstractmethod
    def source(self, *, max_bytes: int = 10_000_000, settle_s: float = 0.0) -> Source:
        """A source on this world (closed by the test)."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """An item holding one document ``name`` with these bytes (a file; a mail with that
        attachment)."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """The item holding ``name`` disappears at the source."""

    @abstractmethod
    def refused(self) -> Source:
        """A source on this world that cannot be read as configured (credentials refused,
        location missing)."""

    def unreachable(self) -> Source | None:
        """A source whose server does not answer; ``None`` when there is no server."""
        return None


class TreeWorld(SourceWorld):
    """A world of files: they can also be changed, moved and made unreadable."""

    @abstractmethod
    def rename(self, old: str, new: str) -> None: ...

    @abstractmethod
    def lock(self, folder: str) -> None:
        """Make ``folder`` unreadable to the source."""

    @abstractmethod
    def unlock(self, folder: str) -> None: ...


def handle(source: Source, changes: Changes, known: dict[str, str]) -> None:
    """What the sync does with a batch: take every item (known from now on, or gone)."""
    for change in changes.items:
        if change.kind == "delete":
            known.pop(change.entry.key, None)
        else:
            if change.previous_key is not None:
                known.pop(change.previous_key, None)
            known[change.entry.key] = change.entry.fingerprint
        source.acknowledge(change.entry, True)


def parts_of(source: Source, change: Change) -> dict[str, bytes]:
    fetched = source.fetch(change.entry)
    try:
        out = {}
        for part in fetched.parts:
            assert part.error is None, part.error
            assert part.data is not None
            data = part.data.read()
            assert part.size == len(data)
            assert part.sha256 == hashlib.sha256(data).hexdigest()
            out[part.filename] = data
        return out
    finally:
        fetched.close()


class SourceConformance:
    """The semantics every source keeps (``sources.base.Source``)."""

    @pytest.fixture
    def world(self) -> SourceWorld:
        raise NotImplementedError("a Test... class provides the world")

    def test_an_empty_source_lists_nothing(self, world: SourceWorld) -> None:
        source = world.source()
        try:
            changes = source.changes(None, {}, LIMIT)
            assert changes.items == [] and not changes.more
        finally:
            source.close()

    def test_a_new_item_is_listed_once_and_fetched_whole(self, world: SourceWorld) -> None:
        data = b"# Invoice 42\n\nACME owes the city of Lyon 1,250 EUR.\n" * 50
        world.put("invoice.md", data)
        source = world.source()
        try:
            first = source.changes(None, {}, LIMIT)
            again = source.changes(None, {}, LIMIT)  # listing consumes nothing
            assert [c.entry.key for c in first.items] == [c.entry.key for c in again.items]
            assert [c.kind for c in first.items] == ["upsert"]
            assert parts_of(source, first.items[0]) == {"invoice.md": data}
            known: dict[str, str] = {}
            handle(source, first, known)
            assert source.changes(first.items[-1].cursor or first.cursor, known, LIMIT).items == []
        finally:
            source.close()

    def test_a_limit_splits_the_changes_and_a_restart_resumes_without_repeats(
        self, world: SourceWorld
    ) -> None:
        names = [f"note-{i}.txt" for i in range(5)]
        for i, name in enumerate(names):
            world.put(name, f"note number {i} about the contract\n".encode())
        source = world.source()
        known: dict[str, str] = {}
        seen: list[str] = []
        try:
            first = source.changes(None, known, 2)
            assert len(first.items) == 2 and first.more
            handle(source, first, known)
            seen += [c.entry.key for c in first.items]
            cursor = first.cursor
        finally:
            source.close()
        # Another process, from what the first one saved: no item twice, none left out.
        source = world.source()
        try:
            while True:
                batch = source.changes(cursor, known, 2)
                handle(source, batch, known)
                seen += [c.entry.key for c in batch.items]
                cursor = batch.cursor
                if not batch.more:
                    break
            assert len(seen) == len(set(seen)) == 5
            assert source.changes(cursor, known, LIMIT).items == []
        finally:
            source.close()

    def test_an_item_over_the_byte_limit_is_refused_unread(self, world: SourceWorld) -> None:
        world.put("big.txt", b"x" * 5000)
        world.put("small.txt", b"a small note")
        source = world.source(max_bytes=1000)
        try:
            changes = source.changes(None, {}, LIMIT)
            assert len(changes.items) == 2
            found = {}
            for change in changes.items:
                fetched = source.fetch(change.entry)
                found.update({p.filename: p for p in fetched.parts})
            big, small = found["big.txt"], found["small.txt"]
            assert big.data is None and big.error is not None
            assert "larger than the 1000 byte limit" in big.error
            assert small.error is None and small.data is not None
            assert small.data.read() == b"a small note"
            for p in found.values():
                p.close()
        finally:
            source.close()

    def test_an_item_gone_before_it_is_read_fails_alone(self, world: SourceWorld) -> None:
        world.put("gone.md", b"# Gone\n\nThis one will vanish.\n")
        world.put("stays.md", b"# Stays\n\nThis one stays.\n")
        source = world.source()
        try:
            changes = source.changes(None, {}, LIMIT)
            world.drop("gone.md")
            outcomes: dict[str, bytes] = {}
            causes = []
            for change in changes.items:
                try:
                    outcomes.update(parts_of(source, change))
                except ItemFailed as exc:
                    causes.append(exc.detail)
            assert outcomes == {"stays.md": b"# Stays\n\nThis one stays.\n"}
            assert len(causes) == 1 and "vanished" in causes[0], causes
        finally:
            source.close()

    def test_a_source_that_cannot_be_read_fails_as_a_whole_with_its_cause(
        self, world: SourceWorld
    ) -> None:
        source = world.refused()
        try:
            with pytest.raises(SourceFailed) as failed:
                source.changes(None, {}, LIMIT)
            assert failed.value.detail
        finally:
            source.close()

    def test_a_server_that_does_not_answer_is_a_transient_failure(self, world: SourceWorld) -> None:
        source = world.unreachable()
        if source is None:
            pytest.skip("this source has no server")
        try:
            with pytest.raises(SourceUnavailable, match="cannot be reached"):
                source.changes(None, {}, LIMIT)
        finally:
            source.close()


class TreeConformance(SourceConformance):
    """What sources of files owe on top (``sources.tree``): changes, moves, deletions last,
    settling, unreadable folders."""

    @pytest.fixture
    def world(self) -> TreeWorld:
        raise NotImplementedError("a Test... class provides the world")

    def _sync(self, world: SourceWorld, known: dict[str, str], cursor: str | None) -> Changes:
        source = world.source()
        try:
            changes = source.changes(cursor, known, LIMIT)
            handle(source, changes, known)
            return changes
        finally:
            source.close()

    def test_changed_moved_and_deleted_files_are_listed_deletions_last(
        self, world: TreeWorld
    ) -> None:
        world.put("a.md", b"# A\n\nfirst\n")
        world.put("b.md", b"# B\n\nsecond\n")
        world.put("c.md", b"# C\n\nthird\n")
        known: dict[str, str] = {}
        cursor = self._sync(world, known, None).cursor
        world.put("a.md", b"# A\n\nfirst, changed and longer\n")
        world.rename("b.md", "sub/b2.md")
        world.drop("c.md")
        changes = self._sync(world, known, cursor)
        kinds = [(c.kind, c.entry.key, c.previous_key) for c in changes.items]
        assert sorted(kinds[:2]) == [("move", "sub/b2.md", "b.md"), ("upsert", "a.md", None)]
        assert kinds[2:] == [("delete", "c.md", None)]
        assert changes.items[0].entry.folder == ("sub",)
        assert self._sync(world, known, changes.cursor).items == []

    def test_a_file_is_taken_only_once_it_stopped_changing(self, world: TreeWorld) -> None:
        world.put("scan.pdf.md", b"# Scan\n\npage one\n")
        source = world.source(settle_s=1.0)
        try:
            first = source.changes(None, {}, LIMIT)
            assert first.items == [] and first.settling == 1
            assert first.wait_s is not None and 0 < first.wait_s <= 1.0
            world.put("scan.pdf.md", b"# Scan\n\npage one\npage two\n")  # still being written
            time.sleep(1.1)
            second = source.changes(first.cursor, {}, LIMIT)
            assert second.items == [] and second.settling == 1
            time.sleep(1.1)
            third = source.changes(second.cursor, {}, LIMIT)
            assert [c.entry.key for c in third.items] == ["scan.pdf.md"]
            assert parts_of(source, third.items[0]) == {
                "scan.pdf.md": b"# Scan\n\npage one\npage two\n"
            }
        finally:
            source.close()

    def test_a_folder_that_cannot_be_read_deletes_nothing(self, world: TreeWorld) -> None:
        world.put("sub/kept.md", b"# Kept\n\nin a folder that becomes unreadable\n")
        world.put("top.md", b"# Top\n\nat the top\n")
        known: dict[str, str] = {}
        cursor = self._sync(world, known, None).cursor
        assert set(known) == {"sub/kept.md", "top.md"}
        world.lock("sub")
        try:
            assert self._sync(world, known, cursor).items == []
        finally:
            world.unlock("sub")

    def test_hidden_and_temporary_files_are_ignored(self, world: TreeWorld) -> None:
        for name in (".hidden.md", "~$report.docx", "download.part", "x.tmp"):
            world.put(name, b"not a document")
        world.put("real.md", b"# Real\n")
        source = world.source()
        try:
            assert [c.entry.key for c in source.changes(None, {}, LIMIT).items] == ["real.md"]
        finally:
            source.close()
