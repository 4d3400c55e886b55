"""The sources' pure parts: a mail split into documents (``sources.mail``), the changes of a
tree of files (``sources.tree``), credentials at rest (``sources.credentials``) and their key
in the settings."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from core.errors import ConfigurationError
from core.settings import Settings, SourcesSettings
from sources import mail
from sources.base import ItemFailed, SourceFailed
from sources.credentials import SecretBox
from sources.tree import FileInfo, Listing, diff

pytestmark = pytest.mark.unit


def message(subject: str = "Invoice", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.get("sender", "Billing <billing@globex.example>")
    msg["Subject"] = subject
    msg["Date"] = "Tue, 02 Dec 2026 09:30:00 +0100"
    msg.set_content("Hello,\nthe invoice is attached.\n")
    return msg


def test_attachments_are_parts_with_the_mails_metadata_and_inline_images_are_not() -> None:
    msg = message()
    msg.add_attachment(b"# Notes\n", maintype="text", subtype="markdown", filename="notes.md")
    msg.add_attachment(b"%PDF-1.7 ...", maintype="application", subtype="pdf")  # no name
    logo = EmailMessage()
    logo.set_content(b"\x89PNG...", maintype="image", subtype="png", disposition="inline")
    msg.attach(logo)
    parts, note = mail.split(bytes(msg), body=False, max_bytes=1000)
    assert [(p.filename, p.error) for p in parts] == [
        ("notes.md", None),
        ("attachment-3.pdf", None),
    ]
    assert parts[0].data is not None and parts[0].data.read() == b"# Notes\n"
    assert parts[0].metadata == {
        "mail_from": "Billing <billing@globex.example>",
        "mail_subject": "Invoice",
        "mail_date": "2026-12-02T09:30:00+01:00",
    }
    assert note == ""


def test_the_text_is_a_small_eml_document_titled_by_the_subject() -> None:
    parts, _ = mail.split(bytes(message("Lift inspection")), body=True, max_bytes=100_000)
    assert [(p.name, p.filename, p.title) for p in parts] == [
        ("body", "Lift inspection.eml", "Lift inspection")
    ]
    assert parts[0].data is not None
    text = parts[0].data.read()
    assert b"Subject: Lift inspection" in text and b"the invoice is attached" in text
    none, note = mail.split(bytes(message()), body=False, max_bytes=100_000)
    assert none == [] and note.startswith("no attachment")


def test_forwarded_mails_are_followed_to_a_bounded_depth() -> None:
    inner = message("Deepest", sender="Deep <deep@example.org>")
    inner.add_attachment(b"deep", maintype="text", subtype="plain", filename="deep.txt")
    for level in range(mail.MAX_DEPTH, -1, -1):  # one level more than followed
        outer = message(f"Level {level}", sender=f"L{level} <l{level}@example.org>")
        outer.add_attachment(inner)
        inner = outer
    parts, _ = mail.split(bytes(inner), body=False, max_bytes=1000)
    assert len(parts) == 1 and parts[0].error is not None
    assert f"nested more than {mail.MAX_DEPTH} deep" in parts[0].error
    shallow = message("Fwd", sender="Alice <alice@acme.example>")
    original = message("Original", sender="Bob <bob@initech.example>")
    original.add_attachment(b"data", maintype="text", subtype="plain", filename="a.txt")
    shallow.add_attachment(original)
    parts, _ = mail.split(bytes(shallow), body=False, max_bytes=1000)
    assert [
        (p.filename, p.metadata["mail_from"], p.metadata["mail_forwarded_by"]) for p in parts
    ] == [("a.txt", "Bob <bob@initech.example>", "Alice <alice@acme.example>")]


def test_undecodable_mail_and_corrupt_or_oversized_attachments() -> None:
    with pytest.raises(ItemFailed, match="undecodable mail"):
        mail.split(b"\xff\xfe\x80 not a mail\r\n", body=False, max_bytes=1000)
    msg = message()
    msg.add_attachment(b"x" * 2000, maintype="application", subtype="pdf", filename="big.pdf")
    msg.add_attachment(b"small", maintype="text", subtype="plain", filename="small.txt")
    parts, _ = mail.split(bytes(msg), body=False, max_bytes=1000)
    assert parts[0].data is None and "larger than the 1000 byte limit" in (parts[0].error or "")
    assert parts[1].error is None
    many = message()
    for i in range(mail.MAX_PARTS + 3):
        many.add_attachment(f"{i}".encode(), maintype="text", subtype="plain", filename=f"{i}.txt")
    parts, note = mail.split(bytes(many), body=False, max_bytes=1000)
    assert len(parts) == mail.MAX_PARTS and note.startswith("3 more attachments left out")


def f(path: str, size: int = 10, mtime: int = 1, file_id: int = 0) -> FileInfo:
    return FileInfo(tuple(path.split("/")), size, mtime, file_id)


def test_a_listing_of_nothing_where_many_files_were_deletes_nothing() -> None:
    known = {f"f{i}": "10:1:0" for i in range(12)}
    with pytest.raises(SourceFailed, match="unmounted or emptied"):
        diff(Listing([], []), known, None, now=100.0, settle_s=0, limit=50)
    few = {"a": "10:1:0"}  # a folder of one file emptied on purpose
    changes = diff(Listing([], []), few, None, now=100.0, settle_s=0, limit=50)
    assert [(c.kind, c.entry.key) for c in changes.items] == [("delete", "a")]


def test_deletions_wait_for_settling_files_for_a_bounded_time() -> None:
    known = {"old.pdf": "10:1:0"}
    listing = Listing([f("new.pdf", size=5, mtime=2)], [])  # a copy still being written
    first = diff(listing, known, None, now=100.0, settle_s=5, limit=50)
    assert first.items == [] and first.settling == 1
    state = json.loads(first.cursor or "{}")
    assert state["missing"] == {"old.pdf": 100.0}
    # Still settling (it grew), but the deletion has waited 30 s: it goes.
    grown = Listing([f("new.pdf", size=9, mtime=3)], [])
    later = diff(grown, known, first.cursor, now=131.0, settle_s=5, limit=50)
    assert [(c.kind, c.entry.key) for c in later.items] == [("delete", "old.pdf")]


def test_moves_need_one_exact_fingerprint_with_a_file_id() -> None:
    known = {"a.pdf": "10:1:7", "b.pdf": "10:1:0", "c.pdf": "10:1:0"}
    listing = Listing([f("x/a.pdf", file_id=7), f("x/b.pdf"), f("x/c.pdf")], [])
    changes = diff(listing, known, None, now=100.0, settle_s=0, limit=50)
    kinds = sorted((c.kind, c.entry.key, c.previous_key) for c in changes.items)
    assert kinds == [
        ("delete", "b.pdf", None),
        ("delete", "c.pdf", None),
        ("move", "x/a.pdf", "a.pdf"),
        ("upsert", "x/b.pdf", None),
        ("upsert", "x/c.pdf", None),
    ]


def test_credentials_open_only_with_a_configured_key() -> None:
    passphrase = SourcesSettings(secret_key=SecretStr("a long passphrase for the tests"))
    token = SecretBox(passphrase).seal({"password": "p@ss"})
    assert "p@ss" not in token and SecretBox(passphrase).open(token, source="s") == {
        "password": "p@ss"
    }
    assert SecretBox(passphrase).seal({}) == "" and SecretBox(passphrase).open("", source="s") == {}
    fernet_key = SourcesSettings(secret_key=SecretStr(Fernet.generate_key().decode()))
    with pytest.raises(ConfigurationError, match="credentials of source 's' cannot be decrypted"):
        SecretBox(fernet_key).open(token, source="s")
    rotated = SourcesSettings(
        secret_key=fernet_key.secret_key, previous_keys=[passphrase.secret_key]
    )
    assert SecretBox(rotated).open(token, source="s") == {"password": "p@ss"}


def test_production_needs_a_key_of_its_own() -> None:
    prod = Settings(env="prod", broker={"url": "redis://r:6379/0"})  # type: ignore[arg-type]
    box = SecretBox(prod.sources, env="prod")
    with pytest.raises(ConfigurationError, match="set GEDRAG_SOURCES__SECRET_KEY"):
        box.seal({"password": "p@ss"})
    dev_token = SecretBox(prod.sources, env="dev").seal({"password": "p@ss"})
    with pytest.raises(ConfigurationError, match="set GEDRAG_SOURCES__SECRET_KEY"):
        box.open(dev_token, source="s")
    with pytest.raises(ConfigurationError, match="GEDRAG_SOURCES__SECRET_KEY"):
        Settings(
            env="prod",
            broker={"url": "redis://r:6379/0"},  # type: ignore[arg-type]
            sources=SourcesSettings(secret_key=SecretStr("change-me-sources")),  # .env.example's
        )
    key = SecretStr(Fernet.generate_key().decode())
    real = Settings(
        env="prod",
        broker={"url": "redis://r:6379/0"},  # type: ignore[arg-type]
        sources=SourcesSettings(secret_key=key),
    )
    sealed = SecretBox(real.sources, env="prod").seal({"password": "p@ss"})
    assert SecretBox(real.sources, env="prod").open(sealed, source="s") == {"password": "p@ss"}
