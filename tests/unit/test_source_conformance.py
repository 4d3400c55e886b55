"""Source conformance (``tests/support/source_conformance.py``) on ``FolderSource``: a folder
on this machine's disk, the tree suite included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sources import folder as folder_module
from sources.base import Source
from sources.folder import FolderSource
from tests.support.source_conformance import TreeConformance, TreeWorld

pytestmark = pytest.mark.unit


class FolderWorld(TreeWorld):
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        self.locked: set[Path] = set()

    def source(self, *, max_bytes: int = 10_000_000, settle_s: float = 0.0) -> Source:
        return FolderSource(self.root, max_bytes=max_bytes, settle_s=settle_s)

    def put(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def drop(self, name: str) -> None:
        (self.root / name).unlink()

    def rename(self, old: str, new: str) -> None:
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.root / old, self.root / new)

    def lock(self, folder: str) -> None:
        path = self.root / folder
        if os.geteuid() != 0:
            path.chmod(0)
            return
        # root reads a folder of mode 000 anyway: the OS's refusal is given by scandir itself
        self.locked.add(path)
        real = os.scandir

        def scandir(target: os.PathLike[str] | str) -> object:
            if Path(target) in self.locked:
                raise PermissionError(13, "Permission denied", str(target))
            return real(target)

        self.monkeypatch.setattr(folder_module.os, "scandir", scandir)

    def unlock(self, folder: str) -> None:
        (self.root / folder).chmod(0o755)
        self.locked.discard(self.root / folder)

    def refused(self) -> Source:
        return FolderSource(self.root / "missing", max_bytes=1000, settle_s=0)


class TestFolderSource(TreeConformance):
    @pytest.fixture
    def world(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FolderWorld:
        root = tmp_path / "inbox"
        root.mkdir()
        return FolderWorld(root, monkeypatch)
