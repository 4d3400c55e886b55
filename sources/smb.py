"""An SMB/CIFS share (the company file server) as a :class:`Source`, through ``smbprotocol``'s
``smbclient``.

Each source keeps its own connection cache (never smbclient's process-wide one), so two
tenants' sessions on the same server never share credentials, and :meth:`SmbSource.close`
logs off. The listing reads sizes, times and file ids from the directory entries (one request
per folder); changes come from :func:`sources.tree.diff`, as for a local folder. Reparse
points (links, junctions) are not followed.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import smbclient
from smbprotocol.exceptions import (
    AccessDenied,
    BadNetworkName,
    LogonFailure,
    SMBAuthenticationError,
    SMBException,
    SMBOSError,
)

from sources.base import (
    Changes,
    Entry,
    Fetched,
    ItemFailed,
    Part,
    SourceFailed,
    SourceUnavailable,
    blocks_of,
    spool,
    too_large,
)
from sources.tree import DEFAULT_IGNORE, FileInfo, Listing, diff, ignored

FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_REPARSE_POINT = 0x400


def _ns(value: datetime) -> int:
    """A directory entry's time in integer nanoseconds (no float rounding)."""
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


class SmbSource:
    """The files under ``\\\\server\\share\\path`` (sub-folders included)."""

    def __init__(
        self,
        *,
        server: str,
        share: str,
        path: str = "",
        username: str,
        password: str,
        port: int = 445,
        domain: str = "",
        encrypt: bool = False,
        max_bytes: int,
        settle_s: float,
        timeout_s: float = 30,
        ignore: Sequence[str] = DEFAULT_IGNORE,
    ) -> None:
        self.server = server
        self.share = share
        self.base = [p for p in path.replace("\\", "/").split("/") if p]
        self.username = f"{domain}\\{username}" if domain else username
        self._password = password
        self.port = port
        self.encrypt = encrypt
        self.max_bytes = max_bytes
        self.settle_s = settle_s
        self.timeout_s = timeout_s
        self.ignore = tuple(ignore)
        self._cache: dict[str, Any] = {}
        self._connected = False

    @property
    def location(self) -> str:
        return "\\\\" + "\\".join([self.server, self.share, *self.base])

    def _unc(self, parts: Sequence[str]) -> str:
        return "\\".join([self.location, *parts])

    def _kw(self) -> dict[str, Any]:
        return {"port": self.port, "connection_cache": self._cache}

    def _connect(self) -> None:
        if self._connected:
            return
        try:
            smbclient.register_session(
                self.server,
                username=self.username,
                password=self._password,
                encrypt=self.encrypt or None,
                connection_timeout=int(self.timeout_s),
                auth_protocol="ntlm",
                **self._kw(),
            )
        except (LogonFailure, SMBAuthenticationError) as exc:
            raise SourceFailed(
                f"the share {self.location} refused the user name or password "
                f"({self.username!r}): logon failure"
            ) from exc
        except (ValueError, OSError) as exc:  # smbprotocol raises ValueError on connect
            raise SourceUnavailable(
                f"the file server {self.server}:{self.port} cannot be reached: {exc}"
            ) from exc
        except SMBException as exc:
            raise SourceUnavailable(f"the file server {self.server} failed: {exc}") from exc
        self._connected = True

    def changes(self, cursor: str | None, known: Mapping[str, str], limit: int) -> Changes:
        return diff(
            self.listing(),
            known,
            cursor,
            now=time.time(),
            settle_s=self.settle_s,
            limit=limit,
            what=f"the share {self.location}",
        )

    def listing(self) -> Listing:
        self._connect()
        files: list[FileInfo] = []
        unreadable: list[tuple[str, ...]] = []
        stack: list[tuple[str, ...]] = [()]
        while stack:
            prefix = stack.pop()
            try:
                entries = list(self._scandir(prefix))
            except SMBOSError as exc:
                if prefix:
                    unreadable.append(prefix)
                    continue
                if exc.errno == errno.ENOENT:
                    raise SourceFailed(f"{self.location} does not exist on the server") from exc
                raise SourceFailed(f"{self.location} cannot be listed: {exc}") from exc
            except (BadNetworkName, AccessDenied) as exc:
                if prefix:
                    unreadable.append(prefix)
                    continue
                raise SourceFailed(f"{self.location} cannot be listed: {exc}") from exc
            except SMBException as exc:
                raise SourceUnavailable(f"listing {self.location} failed: {exc}") from exc
            for e in entries:
                if ignored(e.name, self.ignore):
                    continue
                info = e.smb_info
                if info.file_attributes & FILE_ATTRIBUTE_REPARSE_POINT:
                    continue
                path = (*prefix, e.name)
                if info.file_attributes & FILE_ATTRIBUTE_DIRECTORY:
                    stack.append(path)
                else:
                    files.append(
                        FileInfo(path, info.end_of_file, _ns(info.last_write_time), info.file_id)
                    )
        return Listing(files, unreadable)

    def _scandir(self, prefix: tuple[str, ...]) -> Iterator[Any]:
        yield from smbclient.scandir(self._unc(prefix), **self._kw())

    def _stat(self, unc: str, name: str) -> Any:
        try:
            return smbclient.stat(unc, follow_symlinks=False, **self._kw())
        except SMBOSError as exc:
            if exc.errno == errno.ENOENT:
                raise ItemFailed(f"{name!r} vanished before it could be read", retry=True) from exc
            raise ItemFailed(f"{name!r} cannot be read: {exc}", retry=True) from exc

    def fetch(self, entry: Entry) -> Fetched:
        parts = entry.key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ItemFailed(f"{entry.key!r} is not a path inside the share")
        self._connect()
        unc = self._unc(parts)
        name = parts[-1]
        try:
            before = self._stat(unc, name)
            if before.st_size > self.max_bytes:
                error = too_large(name, before.st_size, self.max_bytes)
                return Fetched([Part("", name, size=before.st_size, error=error)])
            # share_access "rwd": reading never blocks the people writing the share.
            with smbclient.open_file(unc, mode="rb", share_access="rwd", **self._kw()) as f:
                part = spool(blocks_of(f), name="", filename=name, max_bytes=self.max_bytes)
        except SMBOSError as exc:
            if exc.errno == errno.ENOENT:
                raise ItemFailed(f"{name!r} vanished while it was read", retry=True) from exc
            raise ItemFailed(f"{name!r} cannot be read: {exc}", retry=True) from exc
        except (LogonFailure, SMBAuthenticationError) as exc:
            raise SourceFailed(f"the share {self.location} refused the session: {exc}") from exc
        except SMBException as exc:
            raise SourceUnavailable(f"reading {name!r} from {self.location} failed: {exc}") from exc
        try:
            after = self._stat(unc, name)
        except ItemFailed:
            part.close()
            raise ItemFailed(
                f"{name!r} vanished while it was read: nothing taken", retry=True
            ) from None
        changed = (after.st_size, after.st_mtime_ns, after.st_ino) != (
            before.st_size,
            before.st_mtime_ns,
            before.st_ino,
        )
        if part.error is None and (changed or part.size != before.st_size):
            part.close()
            raise ItemFailed(
                f"{name!r} changed while it was read: nothing taken (it is taken once it "
                "stops changing)",
                retry=True,
            )
        return Fetched([part])

    def acknowledge(self, entry: Entry, ok: bool) -> None:
        """Nothing to do: the share is left as it is."""

    def close(self) -> None:
        """Log off and close this source's connections."""
        if self._cache:
            # The server may have gone away first: nothing left to close then.
            with contextlib.suppress(SMBException, OSError, ValueError):
                smbclient.reset_connection_cache(connection_cache=self._cache)
        self._connected = False
