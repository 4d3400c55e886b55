"""``gedrag eval run``: ingest a suite's corpus under a release's configuration, answer every
question through :class:`retrieval.service.QA` (the code path of ``/v1/ask``), score, store.

Each (ingestion config, corpus) pair gets its own namespace under ``<data_dir>/eval/``: its own
catalog, vector folder and graph tables, so an evaluation never touches users' documents. The
namespace is reused when a later release changes only retrieval or generation settings, and by
every suite over the same corpus (fr_service_public_qa and fr_everyday share one).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from core import ids, media
from core.domain import Job, JobState
from core.errors import ConfigurationError, GedragError
from core.settings import (
    BrokerSettings,
    CatalogSettings,
    GraphSettings,
    QdrantSettings,
    Settings,
)
from evaluation import sorting_eval
from evaluation.correctness import answer_correctness
from evaluation.metrics import percentile, retrieval_scores
from evaluation.ragas_metrics import Judge, RagasScorer, Sample
from evaluation.release import Release
from evaluation.sorting_eval import LabelledSuite
from evaluation.suites import REPO_ROOT, Suite
from ingestion.service import BatchProgress as Progress
from ingestion.service import Incoming, IngestionService, InProcessExecutor
from retrieval import factory
from runtime import Runtime
from stores.catalog import Catalog
from stores.catalog.evaluation import EvalStore, StoredRun
from stores.vectors import SearchFilter
from textmodels.embedding import MemoEmbedder, installed_revision
from textmodels.models import TextModels, make_embedder

log = logging.getLogger(__name__)

EVAL_TENANT = "eval"
MARKER = "ingested.json"


def code_version() -> str:
    """The gedrag version and, in a git checkout, its commit (``+dirty`` with local changes)."""
    try:
        version = metadata.version("gedrag")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    git_path = shutil.which("git")
    if git_path is None:
        return version

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git_path, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{sha}{'.dirty' if dirty else ''}"


@dataclass
class Namespace:
    """An isolated set of embedded stores holding one suite's corpus under one ingestion
    config, and the map from gedrag document ids to the suite's ids."""

    root: Path
    runtime: Runtime
    tenant_id: str
    doc_ids: dict[str, str]
    reused: bool
    ingest_s: float


def namespace_settings(base: Settings, release: Release, root: Path) -> Settings:
    """Embedded stores inside ``root`` whatever ``base`` points at: an evaluation never
    writes to the production catalog, Qdrant server or Neo4j."""
    models_dir = base.embedding.models_dir or base.data_dir / "models"
    settings = base.model_copy(
        update={
            "data_dir": root,
            # One conversion of a model per installation, not one per namespace.
            "embedding": base.embedding.model_copy(update={"models_dir": models_dir}),
            "catalog": CatalogSettings(),
            "broker": BrokerSettings(),
            "qdrant": QdrantSettings(collection_prefix="eval"),
            "graph": GraphSettings(),
        }
    )
    return release.settings(settings)


def open_namespace(base: Settings, release: Release, suite: Suite, progress: Progress) -> Namespace:
    wanted = release.config["ingestion"]["embedding"]
    have = installed_revision(wanted["model"])
    if wanted["revision"] and have and wanted["revision"] != have:
        raise ConfigurationError(
            f"release {release.name} wants {wanted['model']} at {wanted['revision']}, "
            f"but {have} is installed"
        )
    root = (base.data_dir / "eval" / f"{release.ingestion_id}-{suite.corpus_id}").resolve()
    marker = root / MARKER
    if root.exists() and not marker.is_file():
        shutil.rmtree(root)  # an interrupted ingestion: start again
    settings = namespace_settings(base, release, root)
    root.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url)
    catalog.migrate()
    memo = MemoEmbedder(make_embedder(settings))
    rt = Runtime(settings, catalog, TextModels(settings, embedder=memo))
    start = time.perf_counter()
    if marker.is_file():
        saved = json.loads(marker.read_text())
        tenant = catalog.tenants.get(EVAL_TENANT)
        return Namespace(root, rt, tenant.id, saved["documents"], True, 0.0)
    try:
        tenant_id, doc_ids = _ingest(rt, suite, progress)
    except BaseException:
        rt.close()
        raise
    memo.clear()
    marker.write_text(
        json.dumps(
            {
                "corpus_id": suite.corpus_id,
                "ingestion": release.config["ingestion"],
                "documents": doc_ids,
            }
        )
    )
    return Namespace(root, rt, tenant_id, doc_ids, False, time.perf_counter() - start)


def _ingest(rt: Runtime, suite: Suite, progress: Progress) -> tuple[str, dict[str, str]]:
    """Register every document of the suite, then run the ingestion service's steps in this
    process (chunks embedded ahead in large batches)."""
    service = IngestionService(rt)
    tenant = rt.catalog.tenants.create(EVAL_TENANT)
    jobs: list[Job] = []
    doc_ids: dict[str, str] = {}
    suite_ids: dict[str, str] = {}  # job id -> suite doc id
    for d in suite.corpus:
        data = ((d.title + "\n\n") if d.title else "").encode() + d.text.encode()
        reg = service.register(
            tenant.id,
            "suite",
            Incoming(io.BytesIO(data), f"{d.id}.txt", media.TEXT, ids.sha256_hex(data), len(data)),
            title=d.title or d.id,
            tags=[],
            metadata={"suite_doc_id": d.id},
        )
        if reg.job is None:
            raise GedragError(f"suite document {d.id} repeats the text of another one")
        doc_ids[reg.document.id] = d.id
        suite_ids[reg.job.id] = d.id
        jobs.append(reg.job)
    InProcessExecutor(service).run_all(jobs, progress)
    for job in jobs:
        done = rt.catalog.jobs.load(job.id)
        if done.state != JobState.SUCCEEDED:
            raise GedragError(f"suite document {suite_ids[job.id]} failed: {done.error}")
    return tenant.id, doc_ids


def judge_from(settings: Settings) -> Judge | None:
    e = settings.evaluation
    if not (e.judge_url and e.judge_model):
        return None
    key = e.judge_api_key.get_secret_value() if e.judge_api_key else None
    return Judge(e.judge_url, e.judge_model, key, e.judge_timeout_s)


def run(
    settings: Settings,
    release: Release,
    suite: Suite,
    store: EvalStore,
    *,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> StoredRun:
    """Evaluate ``release`` on ``suite``; the run (with per-question results) is stored.
    ``run_id``: a run already recorded by ``store.start_run`` (the API answers with its id
    before the evaluation starts)."""
    report = progress or (lambda stage, done, total: None)
    store.save_release(release.id, release.name, release.description, release.config)
    run_id = run_id or store.start_run(release.id, suite.name, suite.id, code_version())
    log.info("evaluation started", extra={"run_id": run_id, "release_id": release.id})
    try:
        if isinstance(suite, LabelledSuite):  # sorting: types and fields (issue #17)
            scores, info, results = sorting_eval.evaluate(settings, release, suite, report)
        else:
            ns = open_namespace(settings, release, suite, report)
            try:
                scores, info, results = _answer_and_score(ns, suite, settings, report)
            finally:
                ns.runtime.close()
            info.update(
                {
                    "namespace": ns.root.name,
                    "index_reused": ns.reused,
                    "ingest_s": round(ns.ingest_s, 1),
                    "documents": len(suite.corpus),
                }
            )
    except BaseException as exc:
        store.fail_run(run_id, str(exc) or type(exc).__name__)
        raise
    store.finish_run(run_id, scores=scores, info=info, results=results)
    return store.get_run(run_id)


def _answer_and_score(
    ns: Namespace, suite: Suite, settings: Settings, report: Progress
) -> tuple[dict[str, float], dict[str, Any], list[dict[str, Any]]]:
    qa = factory.qa(ns.runtime)
    judge = judge_from(settings)
    scorer = RagasScorer(ns.runtime.models.embedder, judge)
    flt = SearchFilter(tenant_id=ns.tenant_id)
    results: list[dict[str, Any]] = []
    stages: dict[str, list[float]] = {}
    started = time.perf_counter()
    for i, q in enumerate(suite.questions):
        t0 = time.perf_counter()
        reply = qa.ask(q.question, flt)
        total_ms = (time.perf_counter() - t0) * 1000
        timings = dict(reply.search.timings_ms)
        timings["generate"] = round(max(0.0, total_ms - timings.get("total", 0.0)), 2)
        timings["ask_total"] = round(total_ms, 2)
        for stage, ms in timings.items():
            stages.setdefault(stage, []).append(ms)
        passages = reply.search.passages
        retrieved = [ns.doc_ids.get(p.document_id, p.document_id) for p in passages]
        scores: dict[str, float | None] = {}
        if q.answerable:
            if q.relevant_ids:
                scores.update(retrieval_scores(retrieved, q.relevant_ids))
            scores.update(
                scorer.score(
                    Sample(
                        question=q.question,
                        response=reply.answer.text,
                        reference=q.reference,
                        retrieved_contexts=[p.text for p in passages],
                        reference_contexts=q.reference_contexts,
                        retrieved_ids=retrieved,
                        reference_ids=q.relevant_ids,
                    )
                )
            )
            scores["answered"] = 1.0 if reply.answer.grounded else 0.0
            if q.reference:
                given = reply.answer.text if reply.answer.grounded else ""
                scores["correctness"] = answer_correctness(given, q.reference).score
        else:
            scores["refused"] = 0.0 if reply.answer.grounded else 1.0
        results.append(
            {
                "id": q.id,
                "question": q.question,
                "answerable": q.answerable,
                "reference": q.reference,
                "answer": reply.answer.text,
                "grounded": reply.answer.grounded,
                "retrieved_ids": retrieved,
                "relevant_ids": q.relevant_ids,
                "scores": scores,
                "timings_ms": timings,
            }
        )
        report("answer + score", i + 1, len(suite.questions))
    aggregate = aggregate_scores(results)
    info = {
        "questions": len(results),
        "answerable": sum(1 for r in results if r["answerable"]),
        "metrics": {"ragas": scorer.names, "judge": judge.model if judge else None},
        "judge_errors": scorer.judge_errors,
        "latency_ms": {
            stage: {"p50": round(percentile(v, 50), 2), "p95": round(percentile(v, 95), 2)}
            for stage, v in stages.items()
        },
        "answer_s": round(time.perf_counter() - started, 1),
    }
    return aggregate, info, results


def aggregate_scores(results: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of each per-question score over the questions where it is defined."""
    sums: dict[str, list[float]] = {}
    for r in results:
        for name, value in r["scores"].items():
            if value is not None:
                sums.setdefault(name, []).append(float(value))
    return {name: round(sum(v) / len(v), 6) for name, v in sorted(sums.items())}
