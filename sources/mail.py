"""A mail as documents: its attachments, what forwarded mails and attached ``.eml`` files
hold, and, when asked, its text.

* Every attachment is a part (a document), held to the byte limit; inline images (logos,
  signatures) are not.
* A forwarded mail (``message/rfc822``) and an attached ``.eml`` file are mails of their own:
  their attachments are parts too, with their own sender, subject and date (and
  ``mail_forwarded_by``, the outer sender), at most :data:`MAX_DEPTH` levels deep.
* The text (``body``): a small ``.eml`` document with the headers and the text part
  (plain text, else HTML), which the parser reads with its subject as the title. An attached
  ``.eml`` file is taken that way always: the sender attached it as a document.
* A mail that cannot be read at all (no header, a broken structure) is :class:`ItemFailed`;
  an attachment whose encoding is corrupt is a part with ``error``, and the others go on.
"""

from __future__ import annotations

import email
import email.utils
from email import policy
from email.errors import InvalidBase64CharactersDefect, InvalidBase64LengthDefect
from email.message import EmailMessage, Message
from typing import Any

from core import media
from sources.base import ItemFailed, Part, spool

MAX_DEPTH = 3
MAX_PARTS = 50
_HEADERS = ("From", "To", "Cc", "Date", "Subject", "Message-ID")
_BAD_BASE64 = (InvalidBase64CharactersDefect, InvalidBase64LengthDefect)


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError, LookupError):  # a malformed header
        raw = msg.get_all(name, failobj=[""])
        value = raw[0] if raw else ""
    return " ".join(str(value or "").split())


def metadata_of(msg: Message) -> dict[str, Any]:
    """The mail's sender, recipients, subject, date (ISO 8601 when readable) and id."""
    meta: dict[str, Any] = {
        "mail_from": _header(msg, "From")[:300],
        "mail_to": _header(msg, "To")[:300],
        "mail_subject": _header(msg, "Subject")[:300],
        "mail_message_id": _header(msg, "Message-ID")[:300],
    }
    date = _header(msg, "Date")
    try:
        meta["mail_date"] = email.utils.parsedate_to_datetime(date).isoformat()
    except (TypeError, ValueError, IndexError):
        meta["mail_date"] = date[:100]
    return {k: v for k, v in meta.items() if v}


def parse(raw: bytes) -> EmailMessage:
    """The message; :class:`ItemFailed` when the bytes are not a mail."""
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the email package raises anything on hostile input
        raise ItemFailed(f"undecodable mail: {type(exc).__name__}: {exc}") from exc
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise ItemFailed("undecodable mail: no header could be read (not a mail)")
    return msg


class _Splitter:
    def __init__(self, *, body: bool, max_bytes: int) -> None:
        self.body = body
        self.max_bytes = max_bytes
        self.parts: list[Part] = []
        self.dropped = 0

    def add(self, part: Part) -> None:
        if len(self.parts) >= MAX_PARTS:
            part.close()
            self.dropped += 1
            return
        self.parts.append(part)

    def message(
        self,
        msg: Message,
        prefix: str,
        depth: int,
        extra: dict[str, Any],
        *,
        text: bool,
        filename: str | None = None,
    ) -> None:
        meta = metadata_of(msg) | extra
        if text:
            self._text(msg, prefix, meta, filename)
        inner_extra = {"mail_forwarded_by": meta.get("mail_from", "")}
        for n, leaf in enumerate(_leaves(msg), start=1):
            self._leaf(leaf, f"{prefix}{n}", depth, meta, inner_extra)

    def _leaf(
        self,
        leaf: Message,
        name: str,
        depth: int,
        meta: dict[str, Any],
        inner_extra: dict[str, Any],
    ) -> None:
        ctype = leaf.get_content_type()
        filename = _filename(leaf)
        nested_file = filename is not None and filename.lower().endswith(".eml")
        if ctype == "message/rfc822" or nested_file:
            inner = _nested(leaf)
            label = filename or "forwarded mail"
            if inner is None:
                self.add(Part(name, label, metadata=meta, error=f"{label!r}: undecodable mail"))
                return
            if depth >= MAX_DEPTH:
                self.add(
                    Part(
                        name,
                        label,
                        metadata=meta,
                        error=f"{label!r}: mails nested more than {MAX_DEPTH} deep",
                    )
                )
                return
            self.message(
                inner,
                f"{name}.",
                depth + 1,
                inner_extra,
                text=self.body or nested_file,
                filename=filename if nested_file else None,
            )
            return
        disposition = leaf.get_content_disposition()
        if filename is None and disposition != "attachment":
            return  # body text (taken as the mail's text) or an unnamed inline part
        if ctype.startswith("image/") and disposition != "attachment":
            return  # a logo or a signature
        filename = filename or f"attachment-{name}{media.EXTENSIONS.get(ctype, '')}"
        data = leaf.get_payload(decode=True)
        if any(isinstance(d, _BAD_BASE64) for d in leaf.defects):
            self.add(
                Part(
                    name,
                    filename,
                    metadata=meta,
                    error=f"{filename!r}: its base64 encoding is corrupt (undecodable)",
                )
            )
            return
        if not isinstance(data, bytes):
            self.add(Part(name, filename, metadata=meta, error=f"{filename!r}: no content"))
            return
        self.add(
            spool([data], name=name, filename=filename, max_bytes=self.max_bytes, metadata=meta)
        )

    def _text(self, msg: Message, prefix: str, meta: dict[str, Any], filename: str | None) -> None:
        plain = html = None
        for leaf in _leaves(msg):
            if _filename(leaf) is not None or leaf.get_content_disposition() == "attachment":
                continue
            ctype = leaf.get_content_type()
            if ctype == "text/plain" and plain is None:
                plain = leaf
            elif ctype == "text/html" and html is None:
                html = leaf
        chosen = plain or html
        if chosen is None:
            return
        raw = chosen.get_payload(decode=True)
        text = media.decode_text(
            raw if isinstance(raw, bytes) else b"", chosen.get_content_charset()
        )
        doc = EmailMessage(policy=policy.SMTP)
        for header in _HEADERS:
            value = _header(msg, header)
            if value:
                try:
                    doc[header] = value
                except (ValueError, TypeError):
                    continue  # a header the writer refuses: the text stays
        doc.set_content(text.text, subtype="plain" if chosen is plain else "html")
        subject = meta.get("mail_subject") or "mail"
        filename = filename or f"{_stem(subject)}.eml"
        self.add(
            spool(
                [bytes(doc)],
                name=f"{prefix}body",
                filename=filename,
                max_bytes=self.max_bytes,
                metadata=meta,
                title=str(subject)[:300],
            )
        )


def split(raw: bytes, *, body: bool, max_bytes: int) -> tuple[list[Part], str]:
    """The mail's parts, and a note when there is none or some were left out;
    :class:`ItemFailed` when the bytes are not a mail."""
    msg = parse(raw)
    splitter = _Splitter(body=body, max_bytes=max_bytes)
    try:
        splitter.message(msg, "", 0, {}, text=body)
    except ItemFailed:
        raise
    except Exception as exc:  # a structure the email package cannot walk
        for part in splitter.parts:
            part.close()
        raise ItemFailed(f"undecodable mail: {type(exc).__name__}: {exc}") from exc
    note = ""
    if splitter.dropped:
        note = f"{splitter.dropped} more attachments left out (at most {MAX_PARTS} per mail)"
    elif not splitter.parts:
        note = "no attachment" + ("" if body else " (the mail's text is not taken: body off)")
    return splitter.parts, note


def _leaves(msg: Message) -> list[Message]:
    """The non-multipart parts of the message, in order, without entering nested mails."""
    if msg.is_multipart() and msg.get_content_maintype() == "multipart":
        out: list[Message] = []
        payload = msg.get_payload()
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, Message):
                out.extend(_leaves(child))
        return out
    return [msg]


def _nested(leaf: Message) -> Message | None:
    """The mail a ``message/rfc822`` part or an ``.eml`` attachment holds."""
    if leaf.get_content_type() == "message/rfc822":
        payload = leaf.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
    data = leaf.get_payload(decode=True)
    if not isinstance(data, bytes):
        return None
    try:
        return parse(data)
    except ItemFailed:
        return None


def _filename(leaf: Message) -> str | None:
    try:
        name = leaf.get_filename()
    except (ValueError, LookupError, TypeError):
        return "attachment"
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*').strip(" .")
    return name[:255] or "attachment"


def _stem(subject: object) -> str:
    text = "".join(c for c in str(subject) if c.isprintable() and c not in '<>:"/\\|?*')
    return text.strip(" .")[:120] or "mail"
