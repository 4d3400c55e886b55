"""Keeping gedrag in sync with its sources: rounds, their schedule, and every item's outcome.

A **round** syncs one source: it holds the source's lease (no two rounds of a source at once,
on any worker), lists the changes since the source's cursor, handles each one and records its
outcome, then saves the cursor and the next time. Documents enter only through
``IngestionService.register`` / ``register_version`` and the executor (the same path as an
upload); deletions go through the records service (purge or trash, refused under a legal
hold).

* **Dedup by content.** Bytes already in the target collection are not ingested again: the
  item becomes another *origin* of that document (``duplicate``). A document leaves only when
  its last origin does.
* **Versions.** A changed file becomes a new version of its document (``updated``); the same
  bytes again change nothing (``unchanged``).
* **Deletions.** A file gone from its source removes its document everywhere (``on_delete``:
  ``delete``, the default), moves it to the trash (``trash``) or leaves it (``keep``).
* **Outcomes.** Every item's latest outcome is in the catalog (``taken``, ``updated``,
  ``duplicate``, ``unchanged``, ``failed`` with its cause, ``deleted``, ``kept``, ``skipped``);
  a failed item does not stop the round.
* **Failing sources.** A round that cannot read its source records why, marks the source
  failing and tries again after ``backoff_base_s × 2^failures`` (at most ``backoff_max_s``);
  the cursor stays where the last handled item left it.
* **Fairness.** A round takes at most ``max_items_per_round`` items, and no more than the
  room its source has left in the ingestion queue (its queued and running jobs count), so a
  tenant's 100,000-file share never holds more than that many jobs ahead of another tenant's
  mailbox; due sources are started least recently started first (round-robin).
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core import media
from core.domain import HIDDEN_STATUSES, Document
from core.errors import (
    Conflict,
    Forbidden,
    GedragError,
    Held,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    StoreUnavailable,
    TransientError,
    UnsupportedMediaType,
)
from ingestion.records import RecordsService
from ingestion.service import Executor, Incoming, IngestionService, Registered
from sources.base import Change, ItemFailed, Part, Source
from sources.config import (
    FolderConfig,
    ImapConfig,
    OnDelete,
    SmbConfig,
    SourceSpec,
    clean_tags,
    connection_of,
    public_config,
    secret_of,
)
from sources.credentials import SecretBox
from sources.factory import build
from stores.catalog.models import utcnow
from stores.catalog.sources import SourceRecord

log = logging.getLogger(__name__)

# Zip containers (Office, OpenDocument) are checked from their directory before anything is
# stored, with the parser's own bounds: 1 GiB expanded, or a ratio over 100 past 10 MiB.
ZIP_TYPES = frozenset({media.DOCX, media.PPTX, media.XLSX, media.ODT})
MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024
MAX_ARCHIVE_RATIO = 100.0
RATIO_FLOOR_BYTES = 10 * 1024 * 1024
# A source waiting for its own jobs looks again this often (its jobs take seconds each).
WAIT_FOR_JOBS_S = 10.0

Send = Callable[[str, str], None]


class SourceUpdate(BaseModel):
    """Changes to a source; a connection field given replaces that field (``password``
    included), the kind never changes."""

    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(default=None, min_length=1, max_length=100)
    tags: list[str] | None = Field(default=None, max_length=50)
    interval_s: int | None = Field(default=None, ge=10, le=7 * 24 * 3600)
    on_delete: OnDelete | None = None
    paused: bool | None = None
    connection: dict[str, Any] | None = None


@dataclass
class RoundSummary:
    """What one round did: outcomes by kind, and why it stopped."""

    source_id: str
    ok: bool
    error: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    more: bool = False
    settling: int = 0
    waiting_jobs: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "counts": dict(self.counts),
            "more": self.more,
            "settling": self.settling,
            "waiting_jobs": self.waiting_jobs,
            "seconds": round(self.seconds, 3),
        }


def zip_bomb(data: io.IOBase | Any, size: int, filename: str) -> str | None:
    """Why a zip container must not be stored (its directory promises too much), or None."""
    try:
        data.seek(0)
        with zipfile.ZipFile(data) as archive:
            expanded = sum(i.file_size for i in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return None  # the parser says what is wrong with it, naming the format
    finally:
        data.seek(0)
    ratio = expanded / max(size, 1)
    if expanded > MAX_ARCHIVE_BYTES or (expanded > RATIO_FLOOR_BYTES and ratio > MAX_ARCHIVE_RATIO):
        return (
            f"{filename!r}: archive expands too much (possible zip bomb): {expanded} bytes, "
            f"ratio {ratio:.0f}"
        )
    return None


class SyncService:
    """Sources of a process: their management, and their rounds."""

    def __init__(self, ingestion: IngestionService, executor: Executor) -> None:
        self.ingestion = ingestion
        self.executor = executor
        self.rt = ingestion.rt
        self.settings = ingestion.rt.settings
        self.repo = ingestion.rt.catalog.sources
        self.box = SecretBox(self.settings.sources, env=self.settings.env)
        self.records = RecordsService(ingestion, executor)

    # -- management ----------------------------------------------------------------------

    def add(self, tenant_id: str, spec: SourceSpec) -> SourceRecord:
        """A new source, due at once. Its collection is created if missing; a folder must be
        one the settings let tenants watch."""
        self._check_connection(spec.connection)
        self.rt.catalog.collections.ensure(tenant_id, spec.collection)
        return self.repo.create(
            tenant_id,
            name=spec.name,
            kind=spec.connection.kind,
            collection=spec.collection,
            tags=spec.tags,
            config=spec.public_config(),
            secret=self.box.seal(spec.secret()),
            interval_s=spec.interval_s or self.settings.sources.default_interval_s,
            on_delete=spec.on_delete,
        )

    def update(self, tenant_id: str, source_id: str, patch: SourceUpdate) -> SourceRecord:
        rec = self.repo.get(tenant_id, source_id)
        values: dict[str, Any] = {}
        if patch.connection is not None:
            if patch.connection.get("kind", rec.kind) != rec.kind:
                raise InvalidInput("a source's kind cannot change", field="connection.kind")
            # A password given replaces the stored one; otherwise the stored one is kept.
            kept = (
                {} if "password" in patch.connection else self.box.open(rec.secret, source=rec.name)
            )
            try:
                merged = connection_of(rec.config | patch.connection, kept)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise InvalidInput(
                    f"connection.{where}: {first['msg']}", field=f"connection.{where}"
                ) from exc
            self._check_connection(merged)
            values["config"] = public_config(merged)
            values["secret"] = self.box.seal(secret_of(merged))
        if patch.collection is not None:
            self.rt.catalog.collections.ensure(tenant_id, patch.collection)
            values["collection"] = patch.collection
        if patch.tags is not None:
            values["tags"] = clean_tags(patch.tags)
        for name in ("interval_s", "on_delete"):
            if getattr(patch, name) is not None:
                values[name] = getattr(patch, name)
        if patch.paused is not None:
            values["paused"] = patch.paused
            if not patch.paused:
                values["next_sync_at"] = utcnow()
        return self.repo.update(tenant_id, source_id, **values) if values else rec

    def pause(self, tenant_id: str, source_id: str, paused: bool = True) -> SourceRecord:
        return self.update(tenant_id, source_id, SourceUpdate(paused=paused))

    def remove(self, tenant_id: str, source_id: str) -> None:
        """Forget the source and its items; its documents stay."""
        self.repo.delete(tenant_id, source_id)

    def request(self, tenant_id: str, source_id: str, *, full: bool = False) -> SourceRecord:
        """Sync as soon as possible (``full``: from an empty cursor: a mailbox reads its
        folder again, mails already taken are duplicates)."""
        rec = self.repo.get(tenant_id, source_id)
        if rec.paused:
            raise Conflict(f"source {rec.name!r} is paused: resume it first")
        return self.repo.request(tenant_id, source_id, reset_cursor=full)

    def _check_connection(self, connection: FolderConfig | SmbConfig | ImapConfig) -> None:
        if not isinstance(connection, FolderConfig):
            return
        path = Path(connection.path)
        if not path.is_absolute():
            raise InvalidInput("a watched folder must be an absolute path", field="connection.path")
        real = Path(os.path.realpath(path))
        data = Path(os.path.realpath(self.settings.data_dir))
        if real == data or real in data.parents or data in real.parents:
            raise InvalidInput(
                "a watched folder cannot hold or be inside gedrag's data folder "
                f"({self.settings.data_dir}): its original files would be taken again",
                field="connection.path",
            )
        roots = [Path(os.path.realpath(r)) for r in self.settings.sources.folder_roots]
        if not roots:
            raise Forbidden(
                "watched folders are off: GEDRAG_SOURCES__FOLDER_ROOTS names the folders under "
                "which tenants may watch one"
            )
        if not any(real == r or r in real.parents for r in roots):
            raise Forbidden(
                f"{connection.path!r} is outside the folders sources may watch "
                "(GEDRAG_SOURCES__FOLDER_ROOTS)"
            )

    def open(self, rec: SourceRecord) -> Source:
        """The source's implementation, with its decrypted credentials."""
        secret = self.box.open(rec.secret, source=rec.name)
        return build(connection_of(rec.config, secret), self.settings)

    # -- scheduling ----------------------------------------------------------------------

    def dispatch_due(self, send: Send, limit: int = 1000) -> int:
        """Start a round (``send(source_id, lease_token)``: queue it) for every due source,
        least recently started first; returns how many were started."""
        started = 0
        now = utcnow()
        for rec in self.repo.due(now, limit):
            if self._start(rec.id, send, now):
                started += 1
        return started

    def dispatch(self, source_id: str, send: Send) -> bool:
        """Start a round of this source now, unless one runs (it then runs again at its end
        when a sync was requested)."""
        return self._start(source_id, send, utcnow())

    def _start(self, source_id: str, send: Send, now: datetime) -> bool:
        token = self.repo.claim(source_id, now, self.settings.sources.lease_s)
        if token is None:
            return False
        try:
            send(source_id, token)
        except GedragError:
            self.repo.finish(
                source_id,
                token,
                now=now,
                ok=False,
                error="the job queue is unavailable",
                cursor=None,
                save_cursor=False,
                next_sync_at=now + timedelta(seconds=self.settings.sources.backoff_base_s),
                summary={},
            )
            raise
        return True

    def sync(self, tenant_id: str, source_id: str) -> RoundSummary:
        """One round of the source in this thread (tools, tests, benchmarks);
        :class:`Conflict` while another round holds it."""
        rec = self.repo.get(tenant_id, source_id)
        token = self.repo.claim(rec.id, utcnow(), self.settings.sources.lease_s)
        if token is None:
            raise Conflict(f"source {rec.name!r} is syncing already, or paused")
        summary = self.run_round(rec.id, token)
        if summary is None:
            raise Conflict(f"source {rec.name!r}: the round lost its lease")
        return summary

    # -- a round -------------------------------------------------------------------------

    def run_round(self, source_id: str, token: str) -> RoundSummary | None:
        """One round under the lease ``token``; ``None`` when the source was removed or the
        lease lost (another worker took over)."""
        rec = self.repo.load(source_id)
        if rec is None:
            return None
        s = self.settings.sources
        started = utcnow()
        summary = RoundSummary(source_id, ok=True)
        in_flight = self.repo.in_flight(source_id)
        room = s.max_items_per_round - in_flight
        wait: float | None = None
        quota_wait: float | None = None
        cursor: str | None = rec.cursor
        if room <= 0:
            summary.waiting_jobs = in_flight
            wait = WAIT_FOR_JOBS_S
        else:
            source: Source | None = None
            try:
                source = self.open(rec)
                changes = source.changes(rec.cursor, self.repo.known(source_id), room)
                summary.more, summary.settling = changes.more, changes.settling
                wait = 0.0 if changes.more else changes.wait_s
                for change in changes.items:
                    ok = self._apply(rec, source, change, summary.counts)
                    source.acknowledge(change.entry, ok)
                    saved = self.repo.heartbeat(
                        source_id,
                        token,
                        utcnow(),
                        s.lease_s,
                        cursor=change.cursor,
                        save_cursor=change.cursor is not None,
                    )
                    if not saved:
                        log.warning("sync round lost its lease", extra={"source": rec.name})
                        return None
                cursor = changes.cursor
            except QuotaExceeded as exc:  # not the source's fault: no backoff, when it frees up
                summary.ok, summary.error = False, exc.detail
                quota_wait = float(exc.retry_after_s or 60)
            except GedragError as exc:
                summary.ok, summary.error = False, exc.detail
            except Exception as exc:
                log.exception("sync round crashed", extra={"source": rec.name})
                summary.ok = False
                summary.error = f"internal error: {type(exc).__name__}: {exc}"
            finally:
                if source is not None:
                    _close(source)
        finished = utcnow()
        summary.seconds = (finished - started).total_seconds()
        if summary.ok:
            delay = rec.interval_s if wait is None else min(wait, rec.interval_s)
        elif quota_wait is not None:
            delay = quota_wait
        else:
            delay = min(s.backoff_base_s * 2**rec.failures, s.backoff_max_s)
        done = self.repo.finish(
            source_id,
            token,
            now=finished,
            ok=summary.ok,
            error=summary.error,
            cursor=cursor,
            save_cursor=summary.ok and room > 0,
            next_sync_at=finished + timedelta(seconds=delay),
            summary=summary.to_dict(),
        )
        if done is None:
            return None
        fields = {"source": rec.name, "tenant": rec.tenant_id, **summary.to_dict()}
        if summary.ok:
            log.info("source synced", extra=fields)
        else:
            log.warning("source failing", extra=fields | {"retry_in_s": delay})
        return summary

    def _apply(
        self, rec: SourceRecord, source: Source, change: Change, counts: Counter[str]
    ) -> bool:
        """Handle one change and record its outcome; False when something of it failed."""
        if change.kind == "delete":
            counts[self._gone(rec, change.entry.key)] += 1
            return True
        if change.kind == "move" and change.previous_key is not None:
            prior = self.repo.item(rec.id, change.previous_key)
            if (
                prior is not None
                and self._target(rec, change.entry.folder)[0]
                == self._target(rec, tuple(change.previous_key.split("/")[:-1]))[0]
            ):
                self.repo.rename(
                    rec.id, change.previous_key, change.entry.key, change.entry.fingerprint
                )
                counts["moved"] += 1
                return True
            # Into another collection: the new place is taken as new, the old one as gone.
            ok = self._upsert(rec, source, change, counts)
            if prior is not None:
                counts[self._gone(rec, change.previous_key)] += 1
            return ok
        return self._upsert(rec, source, change, counts)

    def _target(self, rec: SourceRecord, folder: tuple[str, ...]) -> tuple[str, list[str]]:
        """The collection and tags of an item in ``folder`` (the source's sub-folder rule)."""
        rule = rec.config.get("subfolders", "none")
        if rule == "collection" and folder:
            return folder[0], list(rec.tags)
        if rule == "tags":
            return rec.collection, clean_tags([*rec.tags, *folder])
        return rec.collection, list(rec.tags)

    def _upsert(
        self, rec: SourceRecord, source: Source, change: Change, counts: Counter[str]
    ) -> bool:
        entry = change.entry
        try:
            fetched = source.fetch(entry)
        except ItemFailed as exc:
            self.repo.record(
                rec.id,
                rec.tenant_id,
                entry.key,
                outcome="failed",
                # retry: an empty fingerprint, so the next listing offers the item again
                fingerprint="" if exc.retry else entry.fingerprint,
                detail=exc.detail,
                filename=entry.key.rsplit("/", 1)[-1],
                size_bytes=entry.size,
            )
            counts["failed"] += 1
            return False
        try:
            if not fetched.parts:
                self.repo.record(
                    rec.id,
                    rec.tenant_id,
                    entry.key,
                    outcome="skipped",
                    fingerprint=entry.fingerprint,
                    detail=fetched.note,
                )
                counts["skipped"] += 1
                return True
            collection, tags = self._target(rec, entry.folder)
            ok = True
            for part in fetched.parts:
                key = f"{entry.key}/{part.name}" if part.name else entry.key
                outcome = self._take(rec, key, entry.fingerprint, part, collection, tags)
                counts[outcome] += 1
                ok = ok and outcome != "failed"
            return ok
        finally:
            fetched.close()

    def _take(
        self,
        rec: SourceRecord,
        key: str,
        fingerprint: str,
        part: Part,
        collection: str,
        tags: list[str],
    ) -> str:
        """Register one part (a new document, a new version, or a known one) and record the
        outcome, which it returns. Nothing is stored for a part that fails a check."""
        facts: dict[str, Any] = {
            "fingerprint": fingerprint,
            "filename": part.filename,
            "size_bytes": part.size,
        }

        def record(outcome: str, detail: str = "", **more: Any) -> str:
            self.repo.record(
                rec.id, rec.tenant_id, key, outcome=outcome, detail=detail, **(facts | more)
            )
            return outcome

        if part.error is not None or part.data is None:
            return record("failed", part.error or "no content")
        if part.size == 0:
            return record("failed", f"{part.filename!r} is empty")
        try:
            media_type = media.check(part.data, part.filename)
        except UnsupportedMediaType as exc:
            return record("failed", f"{exc.detail}; supported: {media.supported_list()}")
        if media_type in ZIP_TYPES and (bomb := zip_bomb(part.data, part.size, part.filename)):
            return record("failed", bomb)
        part.data.seek(0)
        f = Incoming(part.data, part.filename, media_type, part.sha256, part.size)
        facts["sha256"] = part.sha256
        actor = f"source:{rec.name}"
        tenant = rec.tenant_id
        prior = self.repo.item(rec.id, key)
        try:
            current = self._live(tenant, prior.document_id) if prior and prior.present else None
            if current is not None:
                if current.current is not None and current.current.sha256 == part.sha256:
                    return record("unchanged", document_id=current.id)
                self.ingestion.check_quota(tenant, [part.size])
                try:
                    reg = self.ingestion.register_version(tenant, current.id, f, actor=actor)
                except Held as exc:
                    return record("failed", exc.detail, document_id=current.id)
                except Conflict:
                    # Another document holds these bytes: this item is now one of its origins.
                    outcome = self._new(rec, collection, tags, part, f, record)
                    self._orphaned(rec, current.id, key)
                    return outcome
                if reg.job is not None:
                    self.executor.submit(reg.job)
                    return record("updated", document_id=current.id, job_id=reg.job.id)
                return record("unchanged", document_id=current.id)
            return self._new(rec, collection, tags, part, f, record)
        except (InvalidInput, Conflict, NotFound, PayloadTooLarge) as exc:
            return record("failed", exc.detail, fingerprint="")
        except (StoreUnavailable, QuotaExceeded):
            # The round fails and is tried again (with backoff); nothing half-done is recorded.
            # A tenant's daily quotas bind its sources as they bind its uploads: the items
            # not taken yet wait for the next round after the quota frees up.
            raise

    def _new(
        self,
        rec: SourceRecord,
        collection: str,
        tags: list[str],
        part: Part,
        f: Incoming,
        record: Callable[..., str],
    ) -> str:
        tenant = rec.tenant_id
        existing = self.rt.catalog.documents.find_by_content(tenant, collection, f.sha256)
        if existing is not None:
            # Never registered again: an older version's bytes would be restored as current.
            same = existing.current is not None and existing.current.sha256 == f.sha256
            detail = "" if same else "an earlier version of the document holds the same bytes"
            return record("duplicate", detail, document_id=existing.id)
        self.ingestion.check_quota(tenant, [part.size])
        metadata: dict[str, Any] = {"source": rec.name, **part.metadata}
        reg: Registered = self.ingestion.register(
            tenant,
            collection,
            f,
            title=part.title or f.title,
            tags=tags,
            metadata=metadata,
        )
        if reg.job is None:
            return record("duplicate", document_id=reg.document.id)
        try:
            self.executor.submit(reg.job)
        except StoreUnavailable:
            self.ingestion.unregister(reg.document.id, reg.job.id)
            raise
        return record("taken", document_id=reg.document.id, job_id=reg.job.id)

    def _live(self, tenant_id: str, document_id: str | None) -> Document | None:
        if document_id is None:
            return None
        try:
            doc = self.rt.catalog.documents.get(tenant_id, document_id)
        except NotFound:
            return None
        return None if doc.status in HIDDEN_STATUSES else doc

    def _exists(self, tenant_id: str, document_id: str | None) -> bool:
        if document_id is None:
            return False
        try:
            self.rt.catalog.documents.get(tenant_id, document_id)
        except NotFound:
            return False
        return True

    def _gone(self, rec: SourceRecord, key: str) -> str:
        """An item gone from its source: its document leaves with its last origin."""
        prior = self.repo.item(rec.id, key)
        if prior is None or not prior.present:
            return "deleted"
        outcome, detail = "deleted", "gone from the source"
        doc = self._live(rec.tenant_id, prior.document_id)
        if doc is not None:
            if self.repo.other_origins(doc.id, rec.id, key):
                detail = "gone from the source; the document stays: another origin holds it"
            else:
                outcome, detail = self._dispose(rec, doc.id, key)
        self.repo.record(
            rec.id,
            rec.tenant_id,
            key,
            outcome=outcome,
            detail=detail,
            present=False,
            fingerprint=prior.fingerprint,
            # None once purged (a purge run in this thread has already removed the row)
            document_id=prior.document_id
            if self._exists(rec.tenant_id, prior.document_id)
            else None,
            sha256=prior.sha256,
            filename=prior.filename,
            size_bytes=prior.size_bytes,
        )
        return outcome

    def _orphaned(self, rec: SourceRecord, document_id: str, key: str) -> None:
        """The item no longer holds this document: it leaves if no other origin does."""
        if not self.repo.other_origins(document_id, rec.id, key):
            self._dispose(rec, document_id, key)

    def _dispose(self, rec: SourceRecord, document_id: str, key: str) -> tuple[str, str]:
        actor = f"source:{rec.name}"
        reason = f"deleted at the source {rec.name!r} ({key})"
        policy: Literal["delete", "trash", "keep"] = rec.on_delete  # type: ignore[assignment]
        try:
            if policy == "keep":
                return "kept", "gone from the source; the document is kept (on_delete=keep)"
            if policy == "trash":
                self.records.trash(rec.tenant_id, document_id, actor=actor, reason=reason)
                return "deleted", "gone from the source; the document is in the trash"
            job, _ = self.records.purge(rec.tenant_id, document_id, actor=actor, reason=reason)
            return (
                "deleted",
                f"gone from the source; the document is removed everywhere (job {job.id})",
            )
        except Held as exc:
            return "kept", f"gone from the source; kept: {exc.detail}"
        except (Conflict, NotFound):
            return "deleted", "gone from the source; the document was already being removed"
        except TransientError as exc:
            # The purge is recorded (its job and certificate): it completes when it can.
            return "deleted", f"gone from the source; its removal is queued ({exc.detail})"


def _close(source: Source) -> None:
    try:
        source.close()
    except Exception:  # a connection that died already: nothing more to release
        log.debug("closing a source failed", exc_info=True)
