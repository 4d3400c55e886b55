"""An IMAP mailbox (``invoices@``) as a :class:`Source`, through ``imapclient``.

The cursor is the folder's UIDVALIDITY and the last UID handled: a restart resumes after the
last mail whose outcome was recorded, and a mailbox whose UIDVALIDITY changed (rebuilt by the
server) is read again from the start, its mails already taken being duplicates. Each mail is an
item (key ``<uidvalidity>:<uid>``) whose parts are its attachments (:mod:`sources.mail`).
Once handled a mail is moved to ``processed_folder`` or flagged ``$GedragProcessed`` (and
``\\Seen``); a mail that could not be taken is flagged ``$GedragFailed`` and left where it is.
A mailbox lists new mails only: mails are never taken as deleted.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Mapping
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from sources import mail
from sources.base import (
    Change,
    Changes,
    Entry,
    Fetched,
    ItemFailed,
    SourceFailed,
    SourceUnavailable,
)

PROCESSED = b"$GedragProcessed"
FAILED = b"$GedragFailed"
Security = Literal["ssl", "starttls", "none"]


def _cursor(uidvalidity: int, uid: int) -> str:
    return json.dumps({"uidvalidity": uidvalidity, "uid": uid}, sort_keys=True)


class ImapSource:
    """The new mails of one folder of a mailbox."""

    def __init__(
        self,
        *,
        host: str,
        username: str,
        password: str,
        port: int = 993,
        security: Security = "ssl",
        folder: str = "INBOX",
        processed: Literal["move", "flag"] = "flag",
        processed_folder: str = "Processed",
        body: bool = False,
        max_bytes: int,
        max_mail_bytes: int,
        timeout_s: float = 30,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.folder = folder
        self.processed = processed
        self.processed_folder = processed_folder
        self.body = body
        self.max_bytes = max_bytes
        self.max_mail_bytes = max_mail_bytes
        self.timeout_s = timeout_s
        self._client: IMAPClient | None = None
        self._uidvalidity = 0

    @property
    def location(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"

    def _connect(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        try:
            client = IMAPClient(
                self.host,
                port=self.port,
                ssl=self.security == "ssl",
                ssl_context=ssl.create_default_context(),
                timeout=self.timeout_s,
            )
        except (OSError, IMAPClientError) as exc:
            raise SourceUnavailable(
                f"the mail server {self.host}:{self.port} cannot be reached: {exc}"
            ) from exc
        try:
            if self.security == "starttls":
                client.starttls(ssl.create_default_context())
            client.login(self.username, self._password)
        except LoginError as exc:
            _quietly_close(client)
            raise SourceFailed(
                f"the mailbox {self.username}@{self.host} refused the user name or password"
            ) from exc
        except (OSError, IMAPClientError) as exc:
            _quietly_close(client)
            raise SourceUnavailable(f"the mail server {self.host} failed: {exc}") from exc
        try:
            selected = client.select_folder(self.folder)
            if self.processed == "move" and not client.folder_exists(self.processed_folder):
                client.create_folder(self.processed_folder)
        except (IMAPClientAbortError, OSError) as exc:
            _quietly_close(client)
            raise SourceUnavailable(f"the mail server {self.host} failed: {exc}") from exc
        except IMAPClientError as exc:
            _quietly_close(client)
            raise SourceFailed(f"the folder {self.folder!r} cannot be opened: {exc}") from exc
        self._uidvalidity = int(selected[b"UIDVALIDITY"])
        self._client = client
        return client

    def changes(self, cursor: str | None, known: Mapping[str, str], limit: int) -> Changes:
        client = self._connect()
        last = 0
        if cursor:
            try:
                state = json.loads(cursor)
                if int(state["uidvalidity"]) == self._uidvalidity:
                    last = int(state["uid"])
            except (ValueError, KeyError, TypeError):
                last = 0  # unreadable: start over; mails already taken come back as duplicates
        criteria: list[Any] = ["UID", f"{last + 1}:*"]
        if self.processed == "flag":
            criteria += ["NOT", "KEYWORD", PROCESSED.decode()]
        try:
            # "n:*" always matches the newest mail, even one below n: filter again.
            uids = sorted(u for u in client.search(criteria) if u > last)
        except (IMAPClientAbortError, OSError) as exc:
            raise SourceUnavailable(f"searching {self.location} failed: {exc}") from exc
        except IMAPClientError as exc:
            raise SourceFailed(f"searching {self.location} failed: {exc}") from exc
        taken = uids[:limit]
        items = [
            Change(
                "upsert",
                Entry(f"{self._uidvalidity}:{uid}", str(uid)),
                cursor=_cursor(self._uidvalidity, uid),
            )
            for uid in taken
        ]
        end = _cursor(self._uidvalidity, taken[-1] if taken else last)
        return Changes(items, end, more=len(uids) > limit)

    def _uid(self, entry: Entry) -> int:
        validity, _, uid = entry.key.partition(":")
        if not uid.isdigit() or validity != str(self._uidvalidity):
            raise ItemFailed(f"mail {entry.key} is no longer in {self.location}")
        return int(uid)

    def fetch(self, entry: Entry) -> Fetched:
        client = self._connect()
        uid = self._uid(entry)
        try:
            sizes = client.fetch([uid], ["RFC822.SIZE"])
            if uid not in sizes:
                raise ItemFailed(f"mail {uid} vanished from {self.location} before it was read")
            size = int(sizes[uid][b"RFC822.SIZE"])
            if size > self.max_mail_bytes:
                raise ItemFailed(
                    f"mail {uid} is larger than the {self.max_mail_bytes} byte limit ({size} "
                    "bytes; GEDRAG_SOURCES__MAX_MAIL_BYTES): not downloaded"
                )
            found = client.fetch([uid], ["BODY.PEEK[]"])
        except (IMAPClientAbortError, OSError) as exc:
            raise SourceUnavailable(
                f"reading mail {uid} from {self.location} failed: {exc}"
            ) from exc
        except IMAPClientError as exc:
            raise ItemFailed(f"mail {uid} cannot be read: {exc}") from exc
        raw = found.get(uid, {}).get(b"BODY[]")
        if not isinstance(raw, bytes):
            raise ItemFailed(f"mail {uid} vanished from {self.location} while it was read")
        parts, note = mail.split(raw, body=self.body, max_bytes=self.max_bytes)
        return Fetched(parts, note)

    def acknowledge(self, entry: Entry, ok: bool) -> None:
        """Move or flag a handled mail; flag one that failed (it stays for a person to see)."""
        client = self._connect()
        try:
            uid = self._uid(entry)
        except ItemFailed:
            return
        try:
            if not ok:
                client.add_flags([uid], [FAILED])
            elif self.processed == "move":
                if client.has_capability("MOVE"):
                    client.move([uid], self.processed_folder)
                else:
                    client.copy([uid], self.processed_folder)
                    client.delete_messages([uid])
                    client.uid_expunge([uid])
            else:
                client.add_flags([uid], [b"\\Seen", PROCESSED])
        except (IMAPClientAbortError, OSError) as exc:
            raise SourceUnavailable(f"marking mail {uid} in {self.location} failed: {exc}") from exc
        except IMAPClientError as exc:
            raise SourceFailed(
                f"mail {uid} cannot be marked as processed in {self.location}: {exc}"
            ) from exc

    def close(self) -> None:
        if self._client is not None:
            _quietly_close(self._client)
            self._client = None


def _quietly_close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClientError, OSError):
        with contextlib.suppress(IMAPClientError, OSError):
            client.shutdown()
