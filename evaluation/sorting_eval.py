"""Sorting measured like retrieval: a suite of labelled documents, scored by type accuracy,
macro-F1 and field exact match, stored as an evaluation run the gate can hold.

A **labelled suite** (descriptor ``format: labelled``) is a folder laid out as ``ged_docs``:
``manifest.jsonl``, one row per file (``id``, ``file``, ``variant``, ``source_id``,
``doc_type``, ``language``, ``template``, ``fields``). The descriptor names the vocabulary the
documents are sorted into (``vocabulary: {key: {name, description}}``; the manifest's types
otherwise) and how many documents per type are labelled (``shots``, seed 0, born-digital
files only).

``gedrag eval run --suite ged_docs`` ingests the files into the evaluation's own namespace
(the sorting step runs in ingestion, as in production), labels ``shots`` documents per type
through :class:`sorting.service.SortingService` (the code of ``POST /v1/sorting/.../correct``),
sorts every other document again and scores it: per document ``type_accuracy`` (1 when the
suggested type is right) and ``field_exact_match`` (its share of the key fields read right);
for the run, their means and ``type_macro_f1``. Files the parser cannot read (scans before OCR)
are counted in ``info`` and left out of the scores.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import ids, media
from core.domain import JobState
from core.errors import UnsupportedMediaType
from core.settings import Settings
from evaluation.release import Release
from evaluation.suites import Suite, SuiteError
from ingestion.service import BatchProgress as Progress
from ingestion.service import Incoming, IngestionService, InProcessExecutor
from runtime import Runtime
from sorting.fields import strip_honorific
from stores.catalog import Catalog
from textmodels.models import TextModels, make_embedder

EVAL_TENANT = "eval-sorting"
MARKER = "ingested.json"
# The fields: dates, parties, references, totals, IBAN, period.
KEY_FIELDS = (
    "date",
    "issuer.name",
    "recipient.name",
    "reference",
    "total_ht",
    "tva",
    "total_ttc",
    "iban",
    "period.start",
    "period.end",
)


@dataclass(frozen=True)
class LabelledDoc:
    id: str
    file: Path
    variant: str
    source_id: str
    doc_type: str
    language: str
    template: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class LabelledSuite(Suite):
    """A suite of labelled documents: ``documents`` stand for its questions."""

    documents: list[LabelledDoc] = field(default_factory=list)
    vocabulary: dict[str, dict[str, str]] = field(default_factory=dict)
    shots: int = 10
    seed: int = 0

    @property
    def id(self) -> str:
        h = hashlib.sha256()
        for d in self.documents:
            h.update(json.dumps([d.id, d.doc_type, d.fields], sort_keys=True).encode())
            h.update(hashlib.sha256(d.file.read_bytes()).digest())
        h.update(json.dumps([self.vocabulary, self.shots, self.seed], sort_keys=True).encode())
        return "suite_" + h.hexdigest()[:16]

    @property
    def corpus_id(self) -> str:
        return "labelled_" + self.id.removeprefix("suite_")


def load_labelled(
    name: str,
    root: Path,
    *,
    vocabulary: dict[str, dict[str, str]] | None = None,
    shots: int = 10,
    limit: int | None = None,
) -> LabelledSuite:
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise SuiteError(f"{manifest}: no such file (a labelled suite needs a manifest.jsonl)")
    docs: list[LabelledDoc] = []
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            doc = LabelledDoc(
                id=str(row["id"]),
                file=root / row["file"],
                variant=str(row.get("variant", "born_digital")),
                source_id=str(row.get("source_id", row["id"])),
                doc_type=str(row["doc_type"]),
                language=str(row.get("language", "und")),
                template=str(row.get("template", "")),
                fields=dict(row.get("fields") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SuiteError(f"{manifest}:{n}: {exc}") from exc
        if not doc.file.is_file():
            raise SuiteError(f"{manifest}:{n}: no file {doc.file}")
        docs.append(doc)
    if limit:
        docs = docs[:limit]
    if not docs:
        raise SuiteError(f"{manifest}: no documents")
    types = vocabulary or {t: {"name": t} for t in sorted({d.doc_type for d in docs})}
    return LabelledSuite(name, [], [], documents=docs, vocabulary=types, shots=shots)


# -- metrics -------------------------------------------------------------------------------


def classification(pairs: Sequence[tuple[str, str | None]]) -> dict[str, float | int | None]:
    """Accuracy and macro-F1 (over the true classes present) of ``(truth, predicted)``."""
    if not pairs:
        return {"n": 0, "accuracy": None, "macro_f1": None}
    f1s = []
    for c in sorted({t for t, _ in pairs}):
        tp = sum(1 for t, p in pairs if t == c and p == c)
        fp = sum(1 for t, p in pairs if t != c and p == c)
        fn = sum(1 for t, p in pairs if t == c and p != c)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    accuracy = sum(1 for t, p in pairs if t == p) / len(pairs)
    return {
        "n": len(pairs),
        "accuracy": round(accuracy, 4),
        "macro_f1": round(sum(f1s) / len(f1s), 4),
    }


def normalised(value: Any) -> Any:
    """Amounts to the cent, texts without honorifics, case or repeated spaces."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return round(float(value), 2)
    if isinstance(value, str):
        return " ".join(strip_honorific(value).casefold().split())
    return value


def field_value(fields: dict[str, Any], key: str) -> Any:
    if "." in key:
        head, part = key.split(".", 1)
        return (fields.get(head) or {}).get(part)
    return fields.get(key)


def field_matches(
    truth: dict[str, Any], got: dict[str, Any], keys: Sequence[str]
) -> dict[str, bool]:
    """``key → read right`` for the keys the truth holds."""
    return {
        k: normalised(field_value(truth, k)) == normalised(field_value(got, k))
        for k in keys
        if field_value(truth, k) is not None
    }


# -- the run -------------------------------------------------------------------------------


def evaluate(
    settings: Settings, release: Release, suite: LabelledSuite, report: Progress
) -> tuple[dict[str, float], dict[str, Any], list[dict[str, Any]]]:
    """Ingest (or reuse), label, sort, score: ``(scores, info, per-document results)``."""
    from evaluation.runner import namespace_settings

    root = (settings.data_dir / "eval" / f"{release.ingestion_id}-{suite.corpus_id}").resolve()
    if root.exists() and not (root / MARKER).is_file():
        shutil.rmtree(root)
    ns = namespace_settings(settings, release, root)
    root.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(ns.catalog_url)
    catalog.migrate()
    rt = Runtime(ns, catalog, TextModels(ns, embedder=make_embedder(ns)))
    try:
        return _evaluate(rt, root, suite, report)
    finally:
        rt.close()


def _evaluate(
    rt: Runtime, root: Path, suite: LabelledSuite, report: Progress
) -> tuple[dict[str, float], dict[str, Any], list[dict[str, Any]]]:
    service = IngestionService(rt)
    sorting = service.sorting
    marker = root / MARKER
    started = time.perf_counter()
    if marker.is_file():
        saved = json.loads(marker.read_text())
        tenant_id, doc_ids, errors = saved["tenant"], saved["documents"], saved["errors"]
    else:
        tenant_id = rt.catalog.tenants.create(EVAL_TENANT).id
        for key, entry in suite.vocabulary.items():
            sorting.put_entry(tenant_id, {"kind": "type", "key": key, **entry})
        doc_ids, errors = _ingest(rt, service, tenant_id, suite, report)
        marker.write_text(json.dumps({"tenant": tenant_id, "documents": doc_ids, "errors": errors}))
    ingest_s = time.perf_counter() - started
    sorting.set_tenant_settings(tenant_id, threshold=1.0)  # predictions, not filing
    sorting.repo.clear_labels(tenant_id)
    readable = [d for d in suite.documents if d.id in doc_ids and d.id not in errors]
    rng = random.Random(suite.seed)  # noqa: S311 - a sample, not a secret
    by_type: dict[str, list[str]] = defaultdict(list)
    for d in readable:
        if d.variant == "born_digital":
            by_type[d.doc_type].append(d.id)
    labelled = {
        i
        for t, found in sorted(by_type.items())
        for i in rng.sample(found, min(suite.shots, len(found)))
    }
    kinds = {d.id: d for d in readable}
    for i, item in enumerate(sorted(labelled)):
        sorting.correct(tenant_id, doc_ids[item], document_type=kinds[item].doc_type, actor="eval")
        report("label", i + 1, len(labelled))
    sources = {kinds[i].source_id for i in labelled}
    results: list[dict[str, Any]] = []
    pairs: list[tuple[str, str | None]] = []
    hits: list[bool] = []
    sort_s: list[float] = []
    rest = [d for d in readable if d.id not in labelled and d.source_id not in sources]
    for n, d in enumerate(rest):
        t0 = time.perf_counter()
        record = sorting.resort(tenant_id, doc_ids[d.id])
        sort_s.append(time.perf_counter() - t0)
        suggested = (
            None if record is None else (record.document_type or record.detail.get("suggested"))
        )
        got = {} if record is None else record.fields
        matched = field_matches(d.fields, got, KEY_FIELDS)
        hits.extend(matched.values())
        scores: dict[str, float | None] = {"type_accuracy": float(suggested == d.doc_type)}
        if matched:
            scores["field_exact_match"] = round(sum(matched.values()) / len(matched), 4)
        pairs.append((d.doc_type, suggested))
        results.append(
            {
                "id": d.id,
                "variant": d.variant,
                "truth": d.doc_type,
                "predicted": suggested,
                "confidence": None if record is None else record.confidence,
                "fields_wrong": sorted(k for k, ok in matched.items() if not ok),
                "scores": scores,
            }
        )
        report("sort", n + 1, len(rest))
    cls = classification(pairs)
    scores_out = {
        "type_accuracy": float(cls["accuracy"] or 0.0),
        "type_macro_f1": float(cls["macro_f1"] or 0.0),
    }
    if hits:
        scores_out["field_exact_match"] = round(sum(hits) / len(hits), 4)
    info = {
        "documents": len(suite.documents),
        "readable": len(readable),
        "unreadable": len(errors),
        "labelled": len(labelled),
        "scored": len(rest),
        "shots": suite.shots,
        "ingest_s": round(ingest_s, 1),
        "sort_s_mean": round(sum(sort_s) / len(sort_s), 4) if sort_s else None,
    }
    return scores_out, info, results


def _ingest(
    rt: Runtime,
    service: IngestionService,
    tenant_id: str,
    suite: LabelledSuite,
    report: Progress,
) -> tuple[dict[str, str], dict[str, str]]:
    jobs = []
    doc_ids: dict[str, str] = {}
    by_job: dict[str, str] = {}
    errors: dict[str, str] = {}
    for d in suite.documents:
        data = d.file.read_bytes()
        try:
            mt = media.check(io.BytesIO(data), d.file.name)  # as the API decides, from the bytes
        except UnsupportedMediaType as exc:  # images, until OCR reads them
            errors[d.id] = exc.detail
            continue
        reg = service.register(
            tenant_id,
            "inbox",
            Incoming(io.BytesIO(data), d.file.name, mt, ids.sha256_hex(data), len(data)),
            title=d.id,
            tags=[],
            metadata={"suite_doc_id": d.id},
        )
        doc_ids[d.id] = reg.document.id
        if reg.job is not None:
            jobs.append(reg.job)
            by_job[reg.job.id] = d.id
    InProcessExecutor(service).run_all(jobs, report)
    for job in jobs:
        done = rt.catalog.jobs.load(job.id)
        if done.state != JobState.SUCCEEDED:
            errors[by_job[job.id]] = done.error or "failed"
    return doc_ids, errors
