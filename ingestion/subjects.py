"""Right of access and erasure (GDPR arts. 15 and 17): every document and chunk of a tenant that
mentions a person, its export, its erasure (purge, certified) or its redaction.

A person is given by terms: a name, an email address, an identifier. Three signals find them:

* the **entity graph**: the chunks whose mentions include the terms' entity keys (the same
  keys ingestion writes: ``jean dupont``, ``email:jean@x.fr``, ``ref:ab-123``), read back from
  each candidate document's graph (an exact mention, not an expansion's neighbour);
* **full text**: the tenant's sparse (BM25) index, the way search ranks passages;
* an exhaustive scan of the tenant's chunk records, titles and metadata, accents and case
  folded, so that nothing is missed that either index would rank too low.

A chunk is reported when its text holds a term (or the graph says it mentions one); the report
says which signal found it. Redaction makes a new version with every occurrence replaced
(text formats keep their format; others become the extracted text, as Markdown) and removes
the older versions, whose originals still hold the terms, from every store.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from core import ids
from core.domain import Document
from core.errors import Held, InvalidInput, NotFound
from core.records import Certificate, CertificateState
from ingestion.service import Incoming, title_from_filename
from stores.catalog.models import utcnow
from stores.catalog.records import ChunkText
from stores.vectors import SearchFilter
from textmodels.entities import normalise_key
from textmodels.language import detect_language

if TYPE_CHECKING:
    from ingestion.records import RecordsService

REDACTED = "[REDACTED]"
# Candidates read from each index; the exhaustive scan catches what ranks beyond.
INDEX_CANDIDATES = 1000
TEXT_MEDIA = {"text/plain", "text/markdown", "text/csv"}
MAX_TERMS = 20


def fold(text: str) -> str:
    """Case and accents folded, whitespace collapsed: ``Hélène  DUPONT`` → ``helene dupont``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.split())


def folded_with_map(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the index in ``text`` it came from
    (redaction finds terms in the folded text and replaces the original characters)."""
    out: list[str] = []
    where: list[int] = []
    last_space = True
    for i, ch in enumerate(text):
        if ch.isspace():
            if not last_space:
                out.append(" ")
                where.append(i)
            last_space = True
            continue
        decomposed = unicodedata.normalize("NFKD", ch.casefold())
        for c in decomposed:
            if not unicodedata.combining(c):
                out.append(c)
                where.append(i)
        last_space = False
    return "".join(out), where


def term_pattern(terms: list[str]) -> re.Pattern[str]:
    """Any of the folded terms, not inside a longer word."""
    alternatives = sorted({re.escape(fold(t)) for t in terms}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def clean_terms(terms: list[str]) -> list[str]:
    cleaned = [t.strip() for t in terms if t and t.strip()]
    if not cleaned:
        raise InvalidInput("name at least one term: a name, an email, an identifier", field="terms")
    if len(cleaned) > MAX_TERMS or any(len(fold(t)) < 3 or len(t) > 200 for t in cleaned):
        raise InvalidInput(f"terms: 1-{MAX_TERMS} terms of 3-200 characters each", field="terms")
    return cleaned


def entity_keys(terms: list[str]) -> set[str]:
    """The graph keys a term may have been written under."""
    keys: set[str] = set()
    for term in terms:
        keys.add(normalise_key(term))
        lowered = term.strip().lower()
        if "@" in lowered:
            keys.add(f"email:{lowered}")
        keys.add(f"ref:{lowered}")
    return keys


def redact_text(text: str, pattern: re.Pattern[str]) -> tuple[str, int]:
    """``text`` with every match of the (folded) pattern replaced by ``[REDACTED]``."""
    folded, where = folded_with_map(text)
    spans = []
    for m in pattern.finditer(folded):
        start, end = where[m.start()], where[m.end() - 1] + 1
        spans.append((start, end))
    out, last = [], 0
    for start, end in spans:
        if start < last:
            continue
        out.append(text[last:start])
        out.append(REDACTED)
        last = end
    out.append(text[last:])
    return "".join(out), len(spans)


@dataclass(frozen=True)
class ChunkMatch:
    chunk_id: str
    version_id: str
    ordinal: int
    page_start: int | None
    page_end: int | None
    text: str
    matched_by: tuple[str, ...]


@dataclass
class DocumentMatch:
    document_id: str
    title: str
    collection: str
    status: str
    fields: list[str] = field(default_factory=list)  # title, metadata.<key>
    chunks: list[ChunkMatch] = field(default_factory=list)

    @property
    def matched_by(self) -> list[str]:
        found = {m for c in self.chunks for m in c.matched_by}
        return sorted(found | ({"fields"} if self.fields else set()))


@dataclass(frozen=True)
class SubjectReport:
    request_id: str
    tenant_id: str
    terms: list[str]
    documents: list[DocumentMatch]

    def to_dict(self, *, with_text: bool = True) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "terms": self.terms,
            "documents": [
                {
                    "document_id": d.document_id,
                    "title": d.title,
                    "collection": d.collection,
                    "status": d.status,
                    "fields": d.fields,
                    "matched_by": d.matched_by,
                    "chunks": [
                        {
                            **asdict(c),
                            "matched_by": list(c.matched_by),
                            **({} if with_text else {"text": None}),
                        }
                        for c in d.chunks
                    ],
                }
                for d in self.documents
            ],
            "chunk_count": sum(len(d.chunks) for d in self.documents),
        }


@dataclass(frozen=True)
class ErasureReport:
    request_id: str
    certificates: list[dict[str, str]]  # document_id, certificate_id, job_id
    refused: list[dict[str, Any]]  # document_id, holds


class SubjectRequests:
    """Find, export, erase and redact what a tenant's documents say about a person."""

    def __init__(self, records: RecordsService) -> None:
        self.records = records
        self.rt = records.rt

    def find(
        self, tenant_id: str, terms: list[str], *, actor: str, hidden: Collection[str] = ()
    ) -> SubjectReport:
        """``hidden``: documents the caller may not read (access lists), left out of the
        report (an administrator, who erases for the tenant, hides none)."""
        terms = clean_terms(terms)
        pattern = term_pattern(terms)
        found: dict[str, dict[str, set[str]]] = {}  # document → chunk → signals

        def mark(doc_id: str, chunk_id: str, signal: str) -> None:
            found.setdefault(doc_id, {}).setdefault(chunk_id, set()).add(signal)

        for doc_id, chunk_id in self._graph(tenant_id, terms):
            mark(doc_id, chunk_id, "graph")
        sparse_hits = self._sparse(tenant_id, terms)
        fields: dict[str, list[str]] = {}
        chunks: dict[str, ChunkText] = {}
        for row in self.rt.catalog.records.chunk_texts(tenant_id):
            hit = pattern.search(fold(row.text)) is not None
            if hit:
                mark(row.document_id, row.id, "text")
                if row.id in sparse_hits:
                    mark(row.document_id, row.id, "sparse")
            if hit or row.id in found.get(row.document_id, {}):
                chunks[row.id] = row
        facts = {f.id: f for f in self.rt.catalog.records.facts(tenant_id)}
        for doc in facts.values():
            where = [] if pattern.search(fold(doc.title)) is None else ["title"]
            where += [
                f"metadata.{k}"
                for k, v in doc.metadata.items()
                if pattern.search(fold(json.dumps(v, ensure_ascii=False))) is not None
            ]
            if where:
                fields[doc.id] = where
        documents = []
        for doc_id in sorted(set(found) | set(fields)):
            known = facts.get(doc_id)
            if known is None:
                continue  # graph or index leftovers of a purged document: verify reports them
            if doc_id in hidden:
                continue
            match = DocumentMatch(doc_id, known.title, known.collection, known.status.value)
            match.fields = fields.get(doc_id, [])
            for chunk_id, signals in sorted(found.get(doc_id, {}).items()):
                record = chunks.get(chunk_id)
                if record is None:
                    continue  # a chunk of a version the catalog no longer has
                match.chunks.append(
                    ChunkMatch(
                        chunk_id=chunk_id,
                        version_id=record.version_id,
                        ordinal=record.ordinal,
                        page_start=record.page_start,
                        page_end=record.page_end,
                        text=record.text,
                        matched_by=tuple(sorted(signals)),
                    )
                )
            match.chunks.sort(key=lambda c: (c.version_id, c.ordinal))
            if match.chunks or match.fields:
                documents.append(match)
        report = SubjectReport(ids.new_id(), tenant_id, terms, documents)
        # The audit keeps how many, never the terms (they are the person's data).
        self.records.audit(
            tenant_id,
            actor,
            "subject.find",
            report.request_id,
            terms=len(terms),
            documents=len(documents),
            chunks=sum(len(d.chunks) for d in documents),
        )
        return report

    def _graph(self, tenant_id: str, terms: list[str]) -> Iterator[tuple[str, str]]:
        """``(document, chunk)`` of each chunk whose graph mentions include a term's key."""
        keys = entity_keys(terms)
        extractor = self.rt.models.extractor
        for term in terms:
            keys.update(e.key for e in extractor.extract(term, detect_language(term)))
        reached = self.rt.graph.expand(tenant_id, sorted(keys), INDEX_CANDIDATES)
        if not reached:
            return
        hits = self.rt.vectors.fetch(list(reached), SearchFilter(tenant_id=tenant_id))
        for doc_id in sorted({str(h.payload.get("document_id")) for h in hits}):
            for version in self.rt.graph.export_document(tenant_id, doc_id):
                for chunk in version.chunks:
                    if keys.intersection(chunk.entity_keys):
                        yield doc_id, chunk.id

    def _sparse(self, tenant_id: str, terms: list[str]) -> set[str]:
        """Chunk ids the tenant's BM25 index returns for the terms."""
        found: set[str] = set()
        encoder = self.rt.models.sparse
        for term in terms:
            sv = encoder.encode_query(term, detect_language(term))
            if not sv.indices:
                continue
            hits = self.rt.vectors.search_sparse(
                sv.indices, sv.values, SearchFilter(tenant_id=tenant_id), INDEX_CANDIDATES
            )
            found.update(h.id for h in hits)
        return found

    # -- export ----------------------------------------------------------------------------

    def export(self, report: SubjectReport, *, actor: str, originals: bool = True) -> bytes:
        """A zip: ``report.json`` (every document and chunk found, with their text) and, with
        ``originals``, each found document's original files."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("report.json", json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
            for match in report.documents if originals else []:
                try:
                    doc = self.rt.catalog.documents.get(report.tenant_id, match.document_id)
                except NotFound:
                    continue
                for v in doc.versions:
                    try:
                        data = self.rt.blobs.read(report.tenant_id, v.sha256)
                    except NotFound:
                        continue
                    z.writestr(f"originals/{doc.id}/v{v.number}-{_safe(v.filename)}", data)
        self.records.audit(
            report.tenant_id,
            actor,
            "subject.export",
            report.request_id,
            documents=len(report.documents),
            originals=originals,
        )
        return buf.getvalue()

    # -- erasure ---------------------------------------------------------------------------

    def erase(self, report: SubjectReport, *, actor: str) -> ErasureReport:
        """Purge every document found (each with its certificate); held ones are refused and
        listed."""
        certificates, refused = [], []
        for match in report.documents:
            try:
                job, cert = self.records.purge(
                    report.tenant_id,
                    match.document_id,
                    actor=actor,
                    reason=f"GDPR erasure request {report.request_id}",
                )
            except Held as exc:
                refused.append({"document_id": match.document_id, "holds": exc.holds})
                continue
            certificates.append(
                {"document_id": match.document_id, "certificate_id": cert.id, "job_id": job.id}
            )
        self.records.audit(
            report.tenant_id,
            actor,
            "subject.erase",
            report.request_id,
            purged=len(certificates),
            refused=len(refused),
        )
        return ErasureReport(report.request_id, certificates, refused)

    # -- redaction -------------------------------------------------------------------------

    def redact(self, report: SubjectReport, *, actor: str) -> list[dict[str, Any]]:
        """For each document found: a new version with the terms replaced by ``[REDACTED]``,
        then its older versions removed from every store (their originals hold the terms), with
        a certificate. Held documents are refused. Running it again finishes what a failure
        left (the redacted version is current; older ones are removed again)."""
        pattern = term_pattern(report.terms)
        out = []
        for match in report.documents:
            tenant, doc_id = report.tenant_id, match.document_id
            try:
                self.rt.catalog.records.refuse_if_held(tenant, doc_id, action="redact", actor=actor)
                doc = self.rt.catalog.documents.get(tenant, doc_id)
                result = self._redact_one(doc, pattern, actor, report.request_id)
            except Held as exc:
                out.append({"document_id": doc_id, "refused": exc.holds})
                continue
            out.append(result)
        self.records.audit(
            report.tenant_id,
            actor,
            "subject.redact",
            report.request_id,
            documents=len(out),
            refused=sum(1 for r in out if "refused" in r),
        )
        return out

    def _redact_one(
        self, doc: Document, pattern: re.Pattern[str], actor: str, request_id: str
    ) -> dict[str, Any]:
        rt = self.rt
        current = doc.current
        if current is None:
            raise NotFound(f"document {doc.id} has no version")
        data = rt.blobs.read(doc.tenant_id, current.sha256)
        if current.media_type in TEXT_MEDIA:
            text = data.decode("utf-8", errors="replace")
            media_type, filename = current.media_type, current.filename
        else:
            parsed = self.records.ingestion.indexer.parser.parse(
                data, media_type=current.media_type, filename=current.filename
            )
            text = "\n\n".join(e.text for e in parsed.elements)
            media_type = "text/markdown"
            filename = f"{title_from_filename(current.filename)}.redacted.md"
        redacted, replaced = redact_text(text, pattern)
        job_id = None
        if replaced:
            body = redacted.encode("utf-8")
            incoming = Incoming(
                source=io.BytesIO(body),
                filename=filename,
                media_type=media_type,
                sha256=ids.sha256_hex(body),
                size_bytes=len(body),
            )
            reg = self.records.ingestion.register_version(
                doc.tenant_id, doc.id, incoming, actor=actor
            )
            if reg.job is not None:
                self.records.executor.submit(reg.job)
                job_id = reg.job.id
            doc = rt.catalog.documents.get(doc.tenant_id, doc.id)
        cert = self._remove_older_versions(doc, actor, request_id, replaced)
        return {
            "document_id": doc.id,
            "replaced": replaced,
            "version": doc.current_version,
            "job_id": job_id,
            "certificate_id": cert.id,
        }

    def _remove_older_versions(
        self, doc: Document, actor: str, request_id: str, replaced: int
    ) -> Certificate:
        """Every version but the current one leaves every store; a redaction certificate
        counts what each held."""
        rt, tenant = self.rt, doc.tenant_id
        older = [v for v in doc.versions if v.number != doc.current_version]
        current_sha = doc.current.sha256 if doc.current else None
        stores: dict[str, dict[str, dict[str, int]]] = {
            "vectors": {"points": {"before": 0, "after": 0}},
            "graph": {"chunks": {"before": 0, "after": 0}, "mentions": {"before": 0, "after": 0}},
            "catalog": {
                "versions": {"before": 0, "after": 0},
                "chunks": {"before": 0, "after": 0},
            },
            "blobs": {"originals": {"before": 0, "after": 0}},
        }
        originals = []
        for v in older:
            points = rt.vectors.count(tenant, doc.id, v.id)
            graph = rt.graph.counts(tenant, doc.id, v.id)
            chunks = len(rt.catalog.chunks.of_version(v.id))
            shared = v.sha256 == current_sha or rt.catalog.records.sha_shared(
                tenant, v.sha256, v.id
            )
            stores["vectors"]["points"]["before"] += points
            stores["graph"]["chunks"]["before"] += graph.chunks
            stores["graph"]["mentions"]["before"] += graph.mentions
            stores["catalog"]["versions"]["before"] += 1
            stores["catalog"]["chunks"]["before"] += chunks
            on_disk = rt.blobs.path(tenant, v.sha256).exists()
            stores["blobs"]["originals"]["before"] += int(on_disk and not shared)
            rt.vectors.delete(tenant, doc.id, v.id)
            rt.graph.delete_version(tenant, doc.id, v.id)
            rt.catalog.chunks.drop(v.id)
            if not shared:
                rt.blobs.delete(tenant, v.sha256)
            rt.catalog.records.drop_version(v.id)
            stores["vectors"]["points"]["after"] += rt.vectors.count(tenant, doc.id, v.id)
            after = rt.graph.counts(tenant, doc.id, v.id)
            stores["graph"]["chunks"]["after"] += after.chunks
            stores["graph"]["mentions"]["after"] += after.mentions
            stores["blobs"]["originals"]["after"] += int(
                not shared and rt.blobs.path(tenant, v.sha256).exists()
            )
            originals.append(
                {
                    "version": v.number,
                    "sha256": v.sha256,
                    "size_bytes": v.size_bytes,
                    "media_type": v.media_type,
                    "removed": not shared,
                }
            )
        now = utcnow()
        cert = Certificate(
            id=ids.new_id(),
            tenant_id=tenant,
            document_id=doc.id,
            kind="redaction",
            reason=f"GDPR redaction request {request_id}",
            requested_by=actor,
            state=CertificateState.COMPLETE,
            job_id=None,
            created_at=now,
            completed_at=now,
            stores=stores,
            originals=originals,
            detail={"replaced": replaced, "kept_version": doc.current_version},
        )
        return rt.catalog.records.save_certificate(cert)


def _safe(filename: str) -> str:
    return re.sub(r"[^\w.\- ]", "_", filename)[:200] or "original"
