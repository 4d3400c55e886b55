"""What a source is, as a tenant describes it: the common part (name, target collection and
tags, schedule, what a deletion at the source does) and one connection block per kind.

Passwords are :class:`SecretStr` (``**********`` in any repr or log) and are kept apart:
:meth:`SourceSpec.public_config` is what the catalog stores in clear, :meth:`SourceSpec.secret`
what it stores encrypted (:mod:`sources.secrets`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

from sources.tree import DEFAULT_IGNORE

OnDelete = Literal["delete", "trash", "keep"]
Subfolders = Literal["none", "collection", "tags"]


class _Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FolderConfig(_Connection):
    """A folder on the server's disk."""

    kind: Literal["folder"] = "folder"
    path: str = Field(min_length=1, max_length=4096, description="Absolute path of the folder.")
    subfolders: Subfolders = Field(
        default="none",
        description="collection: a first-level sub-folder names the collection of the files in "
        "it; tags: every sub-folder of a file's path is a tag; none: neither.",
    )
    settle_s: float | None = Field(
        default=None, ge=0, le=3600, description="Default: GEDRAG_SOURCES__SETTLE_S."
    )
    ignore: list[str] = Field(default=list(DEFAULT_IGNORE), max_length=100)


class SmbConfig(_Connection):
    """A share on an SMB/CIFS file server."""

    kind: Literal["smb"] = "smb"
    server: str = Field(min_length=1, max_length=255)
    port: int = Field(default=445, ge=1, le=65535)
    share: str = Field(min_length=1, max_length=255)
    path: str = Field(default="", max_length=4096, description="Folder inside the share.")
    username: str = Field(min_length=1, max_length=255)
    domain: str = Field(default="", max_length=255)
    password: SecretStr = Field(default=SecretStr(""), description="Stored encrypted.")
    encrypt: bool = Field(default=False, description="Require SMB 3 encryption.")
    subfolders: Subfolders = "none"
    settle_s: float | None = Field(default=None, ge=0, le=3600)
    ignore: list[str] = Field(default=list(DEFAULT_IGNORE), max_length=100)


class ImapConfig(_Connection):
    """One folder of an IMAP mailbox."""

    kind: Literal["imap"] = "imap"
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = Field(
        default="ssl", description="none: plain text (a server on this host only)."
    )
    username: str = Field(min_length=1, max_length=255)
    password: SecretStr = Field(default=SecretStr(""), description="Stored encrypted.")
    folder: str = Field(default="INBOX", min_length=1, max_length=255)
    processed: Literal["move", "flag"] = Field(
        default="flag",
        description="move: handled mails go to processed_folder; flag: they are flagged "
        "$GedragProcessed and \\Seen.",
    )
    processed_folder: str = Field(default="Processed", min_length=1, max_length=255)
    body: bool = Field(default=False, description="Also take each mail's text as a document.")


Connection = Annotated[FolderConfig | SmbConfig | ImapConfig, Field(discriminator="kind")]


class SourceSpec(BaseModel):
    """A new source."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    collection: str = Field(default="default", min_length=1, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=50)
    interval_s: int | None = Field(
        default=None,
        ge=10,
        le=7 * 24 * 3600,
        description="Seconds between syncs; default GEDRAG_SOURCES__DEFAULT_INTERVAL_S.",
    )
    on_delete: OnDelete = Field(
        default="delete",
        description="What a file deleted at the source does to its document (when no other "
        "origin holds it): delete (removed from every store), trash (restorable), keep.",
    )
    connection: Connection

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        return clean_tags(tags)

    def public_config(self) -> dict[str, Any]:
        return public_config(self.connection)

    def secret(self) -> dict[str, str]:
        return secret_of(self.connection)


def clean_tags(tags: list[str]) -> list[str]:
    """Trimmed, unique, sorted; each 1-100 printable characters (others left out)."""
    out = {t.strip() for t in tags}
    return sorted(t for t in out if t and len(t) <= 100 and t.isprintable())


def public_config(connection: FolderConfig | SmbConfig | ImapConfig) -> dict[str, Any]:
    """The connection without its password: what may be stored in clear and shown."""
    return connection.model_dump(exclude={"password"})


def secret_of(connection: FolderConfig | SmbConfig | ImapConfig) -> dict[str, str]:
    password = getattr(connection, "password", None)
    if isinstance(password, SecretStr) and password.get_secret_value():
        return {"password": password.get_secret_value()}
    return {}


def connection_of(config: dict[str, Any], secret: dict[str, str]) -> Connection:
    """The connection from the stored configuration and its decrypted secret."""
    data = dict(config) | ({"password": secret["password"]} if "password" in secret else {})
    return _CONNECTION.validate_python(data)


_CONNECTION: TypeAdapter[FolderConfig | SmbConfig | ImapConfig] = TypeAdapter(Connection)
