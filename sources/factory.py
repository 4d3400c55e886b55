"""The one place a source's kind picks its implementation (``match`` on the typed
connection, ``assert_never`` for a kind nobody wired)."""

from __future__ import annotations

from pathlib import Path
from typing import assert_never

from core.settings import Settings
from sources.base import Source
from sources.config import FolderConfig, ImapConfig, SmbConfig
from sources.folder import FolderSource
from sources.imap import ImapSource
from sources.smb import SmbSource


def build(connection: FolderConfig | SmbConfig | ImapConfig, settings: Settings) -> Source:
    """An open-on-first-use source for the connection (its password in clear, from
    :mod:`sources.credentials`), with the platform's limits."""
    s = settings.sources
    max_bytes = settings.api.max_upload_bytes
    match connection:
        case FolderConfig():
            return FolderSource(
                Path(connection.path),
                max_bytes=max_bytes,
                settle_s=s.settle_s if connection.settle_s is None else connection.settle_s,
                ignore=connection.ignore,
            )
        case SmbConfig():
            return SmbSource(
                server=connection.server,
                port=connection.port,
                share=connection.share,
                path=connection.path,
                username=connection.username,
                domain=connection.domain,
                password=connection.password.get_secret_value(),
                encrypt=connection.encrypt,
                max_bytes=max_bytes,
                settle_s=s.settle_s if connection.settle_s is None else connection.settle_s,
                timeout_s=s.timeout_s,
                ignore=connection.ignore,
            )
        case ImapConfig():
            return ImapSource(
                host=connection.host,
                port=connection.port,
                security=connection.security,
                username=connection.username,
                password=connection.password.get_secret_value(),
                folder=connection.folder,
                processed=connection.processed,
                processed_folder=connection.processed_folder,
                body=connection.body,
                max_bytes=max_bytes,
                max_mail_bytes=s.max_mail_bytes,
                timeout_s=s.timeout_s,
            )
        case _:
            assert_never(connection)
