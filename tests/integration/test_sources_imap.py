"""An IMAP mailbox synced into gedrag, against the session's Dovecot: attachments (and the text)
as documents with the mail's sender, subject and date, forwarded mails and attached ``.eml``
files, processed mails flagged or moved, and hostile mail: a 50 MB attachment, a zip bomb, an
undecodable mail, a corrupt attachment, each refused alone with its cause, nothing partial
stored, the rest of the mailbox taken."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from sources.config import ImapConfig, SourceSpec
from stores.catalog.sources import SourceRecord
from tests.conftest import FIXTURES
from tests.support.mailshare import ImapServer
from tests.support.sources_lab import Lab, make_lab

pytestmark = pytest.mark.integration

MEMO_PDF = (FIXTURES / "unstructured_fake-memo.pdf").read_bytes()
WORD = (FIXTURES / "unstructured_fake.docx").read_bytes()
NOTES = b"# Delivery notes\n\nThe lifts of the city of Lyon were serviced by ACME on March 3.\n"


def mail(
    subject: str,
    attachments: Sequence[tuple[str, bytes, str]] = (),
    *,
    sender: str = "Billing <billing@globex.example>",
    text: str = "Please find the documents attached.\n",
    date: str = "Tue, 02 Dec 2026 09:30:00 +0100",
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "invoices@acme.example"
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = f"<{abs(hash(subject))}@globex.example>"
    msg.set_content(text)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def forwarding(subject: str, inner: EmailMessage) -> bytes:
    outer = mail(subject, sender="Alice <alice@acme.example>", text="FYI, see below.\n")
    outer.add_attachment(inner)  # message/rfc822
    return bytes(outer)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = make_lab(tmp_path, max_upload_bytes=10 * 1024 * 1024)
    yield made
    made.rt.close()


def mailbox(lab: Lab, imap: ImapServer, **connection: Any) -> SourceRecord:
    config = ImapConfig(
        host=imap.host,
        port=imap.port,
        security="none",
        username=imap.user,
        password=SecretStr(imap.password),
        **connection,
    )
    return lab.sync.add(
        lab.tenant, SourceSpec(name="invoices", collection="mail", connection=config)
    )


def by_filename(lab: Lab, source: SourceRecord) -> dict[str, Any]:
    return {i.filename: i for i in lab.items(source).values() if i.filename}


def test_attachments_forwarded_mails_and_eml_files_become_documents(
    lab: Lab, imap: ImapServer
) -> None:
    imap.append(
        bytes(
            mail(
                "Invoice March",
                [("memo.pdf", MEMO_PDF, "application/pdf"), ("notes.md", NOTES, "text/markdown")],
            )
        )
    )
    inner = mail(
        "Signed contract",
        [
            (
                "contract.docx",
                WORD,
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            )
        ],
        sender="Bob <bob@initech.example>",
        date="Mon, 01 Dec 2026 08:00:00 +0000",
    )
    imap.append(forwarding("Fwd: Signed contract", inner))
    eml = mail(
        "Old report",
        [("report.md", b"# Report\n\nThe 2025 report of the lifts.\n", "text/markdown")],
    )
    carrier = mail("An old mail, attached")
    carrier.add_attachment(
        bytes(eml), maintype="application", subtype="octet-stream", filename="old.eml"
    )
    imap.append(bytes(carrier))
    imap.append(bytes(mail("Just saying hello")))  # nothing attached
    source = mailbox(lab, imap)

    summary = lab.run(source)
    assert summary.ok, summary.error
    files = by_filename(lab, source)
    assert {k: v.outcome for k, v in files.items()} == {
        "memo.pdf": "taken",
        "notes.md": "taken",
        "contract.docx": "taken",
        "old.eml": "taken",  # the attached mail itself: its subject and text
        "report.md": "taken",  # what it held
    }
    assert summary.counts["skipped"] == 1
    skipped = [i for i in lab.items(source).values() if i.outcome == "skipped"]
    assert "no attachment" in skipped[0].detail
    docs = lab.documents()
    assert len(docs) == 5 and all(lab.indexed(d) for d in docs)
    memo = docs[files["memo.pdf"].document_id]
    assert memo.collection == "mail"
    assert memo.metadata["mail_from"] == "Billing <billing@globex.example>"
    assert memo.metadata["mail_subject"] == "Invoice March"
    assert memo.metadata["mail_date"] == "2026-12-02T09:30:00+01:00"
    contract = docs[files["contract.docx"].document_id]
    assert contract.metadata["mail_from"] == "Bob <bob@initech.example>"  # the original sender
    assert contract.metadata["mail_forwarded_by"] == "Alice <alice@acme.example>"
    assert docs[files["old.eml"].document_id].title == "Old report"

    # Every mail handled is flagged, and the next round finds nothing new.
    assert all(b"$GedragProcessed" in f for f in imap.flags().values())
    assert all(b"\\Seen" in f for f in imap.flags().values())
    jobs = lab.jobs()
    assert dict(lab.run(source).counts) == {}
    assert lab.jobs() == jobs


def test_the_text_is_taken_when_asked_and_handled_mail_moves_to_a_folder(
    lab: Lab, imap: ImapServer
) -> None:
    imap.append(
        bytes(
            mail(
                "Lift inspection",
                [("notes.md", NOTES, "text/markdown")],
                text="The inspection of the town hall lifts is due in June.\n",
            )
        )
    )
    imap.append(bytes(mail("Same notes again", [("notes-copy.md", NOTES, "text/markdown")])))
    source = mailbox(lab, imap, body=True, processed="move", processed_folder="Done")
    summary = lab.run(source)
    assert summary.ok, summary.error
    files = by_filename(lab, source)
    assert {k: v.outcome for k, v in files.items()} == {
        "Lift inspection.eml": "taken",
        "notes.md": "taken",
        "Same notes again.eml": "taken",
        "notes-copy.md": "duplicate",  # the same bytes: one document, two origins
    }
    notes = files["notes.md"].document_id
    assert files["notes-copy.md"].document_id == notes
    assert len(lab.rt.catalog.sources.origins(lab.tenant, notes)) == 2
    body = lab.documents()[files["Lift inspection.eml"].document_id]
    assert body.title == "Lift inspection" and lab.indexed(body.id)
    assert imap.uids("INBOX") == [] and len(imap.uids("Done")) == 2


def zip_bomb_docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
        z.writestr("word/media/filler.bin", b"\0" * (100 * 1024 * 1024))
    return buf.getvalue()


CORRUPT_BASE64 = (
    b"From: Billing <billing@globex.example>\r\nTo: invoices@acme.example\r\n"
    b"Subject: Broken attachment\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
    b"--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=broken.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!!not*base64$$$$\r\n--XX--\r\n"
)


def test_hostile_mail_is_refused_item_by_item_and_the_rest_is_taken(
    lab: Lab, imap: ImapServer
) -> None:
    big = b"%PDF-1.7\n" + b"\0" * (50 * 1024 * 1024)  # 50 MB, over the 10 MB upload cap
    imap.append(
        bytes(
            mail(
                "Scans of the year",
                [("year.pdf", big, "application/pdf"), ("summary.md", NOTES, "text/markdown")],
            )
        )
    )
    imap.append(
        bytes(mail("Contract", [("bomb.docx", zip_bomb_docx(), "application/octet-stream")]))
    )
    imap.append(b"\xff\xfe\x80\x81 not a mail at all \x90\x91\r\n\x92\x93 still not\r\n")
    imap.append(CORRUPT_BASE64)
    imap.append(bytes(mail("Fine", [("memo.pdf", MEMO_PDF, "application/pdf")])))
    source = mailbox(lab, imap)
    blobs = len(lab.rt.blobs.all())

    summary = lab.run(source)
    assert summary.ok, summary.error  # bad mail fails alone: the round goes on
    items = list(lab.items(source).values())
    failed = {i.filename or i.key: i.detail for i in items if i.outcome == "failed"}
    taken = sorted(i.filename for i in items if i.outcome == "taken")
    assert taken == ["memo.pdf", "summary.md"]
    assert "larger than the 10485760 byte limit" in failed["year.pdf"]
    assert "zip bomb" in failed["bomb.docx"]
    assert "base64" in failed["broken.pdf"]
    undecodable = [d for k, d in failed.items() if k not in {"year.pdf", "bomb.docx", "broken.pdf"}]
    assert len(undecodable) == 1 and "undecodable mail" in undecodable[0]
    # Nothing partial: two documents and their two originals, nothing of the refused parts.
    assert len(lab.documents()) == 2 and len(lab.rt.blobs.all()) == blobs + 2
    # Mails with a refused part are flagged for a person and stay; the others are processed.
    flags = imap.flags()
    assert sum(b"$GedragFailed" in f for f in flags.values()) == 4
    assert sum(b"$GedragProcessed" in f for f in flags.values()) == 1
    assert dict(lab.run(source).counts) == {}  # not tried again and again


def test_a_mailbox_that_refuses_the_password_fails_as_a_whole(lab: Lab, imap: ImapServer) -> None:
    imap.append(bytes(mail("Fine", [("memo.pdf", MEMO_PDF, "application/pdf")])))
    config = ImapConfig(
        host=imap.host,
        port=imap.port,
        security="none",
        username=imap.user,
        password=SecretStr("wrong"),
    )
    source = lab.sync.add(lab.tenant, SourceSpec(name="wrong", connection=config))
    summary = lab.run(source)
    assert not summary.ok and "refused the user name or password" in (summary.error or "")
    rec = lab.rt.catalog.sources.get(lab.tenant, source.id)
    assert (rec.state, rec.failures) == ("failing", 1)
    assert lab.documents() == {}
    marks = {b"$GedragProcessed", b"$GedragFailed", b"\\Seen"}
    assert [f & marks for f in imap.flags().values()] == [set()]  # the mail was not touched
