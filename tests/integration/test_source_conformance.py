"""Source conformance (``tests/support/source_conformance.py``) on the sources that talk to a
server, each against a real one started for the session (``tests/support/mailshare.py``):

* ``SmbSource`` on Samba, the tree suite included (the share is a folder the tests write into);
* ``ImapSource`` on Dovecot: each item is a mail with one attachment.
"""

from __future__ import annotations

import os

import pytest

from sources.base import Source
from sources.imap import ImapSource
from sources.smb import SmbSource
from tests.support.mailshare import ImapServer, SmbServer, mail_with
from tests.support.net import free_port
from tests.support.source_conformance import (
    SourceConformance,
    SourceWorld,
    TreeConformance,
    TreeWorld,
)

pytestmark = pytest.mark.integration


class SmbWorld(TreeWorld):
    def __init__(self, server: SmbServer) -> None:
        self.server = server

    def source(
        self, *, max_bytes: int = 10_000_000, settle_s: float = 0.0, password: str | None = None
    ) -> Source:
        s = self.server
        return SmbSource(
            server=s.host,
            port=s.port,
            share=s.share,
            username=s.user,
            password=s.password if password is None else password,
            max_bytes=max_bytes,
            settle_s=settle_s,
            timeout_s=10,
        )

    def put(self, name: str, data: bytes) -> None:
        path = self.server.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def drop(self, name: str) -> None:
        (self.server.folder / name).unlink()

    def rename(self, old: str, new: str) -> None:
        (self.server.folder / new).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.server.folder / old, self.server.folder / new)

    def lock(self, folder: str) -> None:
        (self.server.folder / folder).chmod(0)  # the server runs as another, unprivileged user

    def unlock(self, folder: str) -> None:
        (self.server.folder / folder).chmod(0o755)

    def refused(self) -> Source:
        return self.source(password="not-the-password")

    def unreachable(self) -> Source:
        s = self.server
        return SmbSource(
            server=s.host,
            port=free_port(),
            share=s.share,
            username=s.user,
            password=s.password,
            max_bytes=1000,
            settle_s=0,
            timeout_s=5,
        )


class ImapWorld(SourceWorld):
    def __init__(self, server: ImapServer) -> None:
        self.server = server

    def source(
        self, *, max_bytes: int = 10_000_000, settle_s: float = 0.0, password: str | None = None
    ) -> Source:
        s = self.server
        return ImapSource(
            host=s.host,
            port=s.port,
            security="none",
            username=s.user,
            password=s.password if password is None else password,
            max_bytes=max_bytes,
            max_mail_bytes=50_000_000,
            timeout_s=10,
        )

    def put(self, name: str, data: bytes) -> None:
        self.server.append(mail_with(name, data))

    def drop(self, name: str) -> None:
        c = self.server.client()
        try:
            c.select_folder("INBOX")
            uids = c.search(["SUBJECT", name])
            assert uids, f"no mail about {name}"
            c.delete_messages(uids)
            c.expunge()
        finally:
            c.logout()

    def refused(self) -> Source:
        return self.source(password="not-the-password")

    def unreachable(self) -> Source:
        s = self.server
        return ImapSource(
            host=s.host,
            port=free_port(),
            security="none",
            username=s.user,
            password=s.password,
            max_bytes=1000,
            max_mail_bytes=1000,
            timeout_s=5,
        )


class TestSmbSource(TreeConformance):
    @pytest.fixture
    def world(self, smb: SmbServer) -> SmbWorld:
        return SmbWorld(smb)


class TestImapSource(SourceConformance):
    @pytest.fixture
    def world(self, imap: ImapServer) -> ImapWorld:
        return ImapWorld(imap)
