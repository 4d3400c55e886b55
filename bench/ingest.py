"""Ingestion benchmark: doc_fixtures and the French service-public corpus through the real
pipeline (HTTP upload, embedded Celery worker, parse, chunk, embed, Qdrant, graph).

    .venv/bin/python bench/ingest.py [--datasets ../shared/datasets] [--limit N]

Prints its figures, then one JSON line: documents/s, pages/s, chunks/s, seconds per stage,
peak RSS; progressive indexing (issue #22): per document, seconds from its upload request to
``searchable`` (terms, entities, graph published) and to ``ready`` (embedded), p50/p95/max,
while the corpus is poured in 50 files a request; the padding share of the model calls; tokens
embedded per second inside the pipeline's model calls against sentence-transformers' ``encode``
alone on the same chunks (batch 32, nothing else running), as a ratio of this one run.
``--dataset DIR`` pours any folder's BEIR-layout ``corpus.jsonl`` instead of the French fiches.
Stages are timed by wrapping the pipeline's own functions; the sum of stage seconds
exceeds wall time because the vector and graph steps run in parallel.

``--models`` (default: MiniLM and multilingual-e5-small) then embeds the same French passages
(~120-word windows of the fiches, with their sentence vectors, as ingestion does) with each model
in turn, in this one run, and prints texts/s and tokens/s (each model's own tokens) and e5's speed
as a ratio of the first model's: compare speeds as ratios of one run, never across runs.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pypdf
from fastapi.testclient import TestClient

import ingestion.indexing as indexing
from core.settings import Settings
from ingestion.limits import ParsePool
from serving.app import create_app
from stores.graph.relational import RelationalGraphStore
from stores.vectors.edge import EdgeVectorStore
from stores.vectors.qdrant import QdrantVectorStore
from textmodels.models import make_embedder
from textmodels.sentences import sentence_spans

STAGES: dict[str, float] = defaultdict(float)
_lock = threading.Lock()


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                STAGES[name] += time.perf_counter() - start

    return wrapper


# Progressive indexing (issue #22): when each job's version became searchable (publish) and
# ready (finalize), from the catalog's own steps; when its file was sent.
SENT: dict[str, float] = {}
SEARCHABLE: dict[str, float] = {}
READY: dict[str, float] = {}
# Every model call's texts: real tokens and tokens computed with padding (the model sorts a
# call's texts by length and pads each batch to its longest); the chunks embedded.
PADDING = {"real": 0, "padded": 0, "calls": 0}
EMBEDDED: list[str] = []


def _mark(book: dict[str, float], fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, job_id: str) -> Any:
        out = fn(self, job_id)
        with _lock:
            if job_id not in book and (out is not False):
                book[job_id] = time.perf_counter()
        return out

    return wrapper


def _accounted(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(model: Any, sentences: Any, *args: Any, **kwargs: Any) -> Any:
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        size = int(kwargs.get("batch_size", 32))
        lengths = [
            len(ids)
            for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)[
                "input_ids"
            ]
        ]
        # sentence-transformers orders a call's texts by character length, longest first.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        padded = sum(
            max(lengths[i] for i in order[b : b + size]) * len(order[b : b + size])
            for b in range(0, len(order), size)
        )
        with _lock:
            PADDING["real"] += sum(lengths)
            PADDING["padded"] += padded
            PADDING["calls"] += 1
        return fn(model, sentences, *args, **kwargs)

    return wrapper


def instrument() -> None:
    from ingestion.service import IngestionService

    IngestionService.publish = _mark(SEARCHABLE, IngestionService.publish)  # type: ignore[method-assign]
    IngestionService.finalize = _mark(READY, IngestionService.finalize)  # type: ignore[method-assign]
    vector_points = indexing.Indexer.vector_points

    def embedded(self: Any, chunks: Any, *args: Any) -> Any:
        with _lock:
            EMBEDDED.extend(c.text for c in chunks)
        return vector_points(self, chunks, *args)

    indexing.Indexer.vector_points = embedded  # type: ignore[method-assign]
    # Parsing runs in child processes: timed around the pool's call (the wait included).
    ParsePool.parse = timed("parse", ParsePool.parse)  # type: ignore[method-assign]
    indexing.chunk = timed("chunk", indexing.chunk)  # type: ignore[assignment]
    # The model's own encode, inside the embedder's lock: waiting for the lock is not embedding.
    # Imported here, after textmodels.embedding has set how OpenMP threads wait.
    from sentence_transformers import SentenceTransformer

    SentenceTransformer.encode = _accounted(timed("embed", SentenceTransformer.encode))  # type: ignore[method-assign]
    idx = indexing.Indexer
    idx.version_graph = timed("entities", idx.version_graph)  # type: ignore[method-assign]
    QdrantVectorStore.upsert = timed("qdrant_write", QdrantVectorStore.upsert)  # type: ignore[method-assign]
    EdgeVectorStore.upsert = timed("qdrant_write", EdgeVectorStore.upsert)  # type: ignore[method-assign]
    RelationalGraphStore.upsert_version = timed(  # type: ignore[method-assign]
        "graph_write", RelationalGraphStore.upsert_version
    )


def run(
    client: TestClient,
    auth: dict[str, str],
    files: list[tuple[str, bytes]],
    collection: str,
    rate: float | None = None,
) -> dict[str, Any]:
    """Upload ``files`` 50 a request (one a request at ``rate`` files/s: a scanner or a sync
    pouring them in) and wait for every job."""
    start = time.perf_counter()
    jobs = []
    step = 1 if rate else 50
    for i in range(0, len(files), step):
        if rate:
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        batch = [("files", (name, data)) for name, data in files[i : i + step]]
        sent = time.perf_counter()
        r = client.post(
            "/v1/documents/batch", headers=auth, files=batch, data={"collection": collection}
        )
        r.raise_for_status()
        batch_jobs = [item["job_id"] for item in r.json()["items"] if item["job_id"]]
        with _lock:
            SENT.update(dict.fromkeys(batch_jobs, sent))
        jobs += batch_jobs
    failed = []
    pending = set(jobs)
    shown = time.perf_counter()
    while pending:
        if time.perf_counter() - shown > 15:  # a long pour shows where it stands
            shown = time.perf_counter()
            with _lock:
                searchable = sum(1 for j in jobs if j in SEARCHABLE)
            print(
                f"  {collection}: {time.perf_counter() - start:.0f}s, {len(jobs)} sent, "
                f"{searchable} searchable, {len(jobs) - len(pending)} finished",
                file=sys.stderr,
                flush=True,
            )
        for job_id in list(pending):
            job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
            if job["state"] in ("succeeded", "failed"):
                pending.discard(job_id)
                if job["state"] == "failed":
                    failed.append(job["error"])
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    chunks = 0
    cursor = None
    while True:
        params: dict[str, Any] = {"collection": collection, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/documents", headers=auth, params=params).json()
        chunks += sum((d["versions"][-1]["chunk_count"] or 0) for d in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    return {
        "documents": len(files),
        "failed": failed,
        "seconds": seconds,
        "chunks": chunks,
        "to_searchable_s": _delays(jobs, SEARCHABLE),
        "to_ready_s": _delays(jobs, READY),
    }


def _delays(jobs: list[str], book: dict[str, float]) -> dict[str, float] | None:
    """p50/p95/max seconds from a file's upload request to the moment it reached ``book``."""
    delays = sorted(book[j] - SENT[j] for j in jobs if j in book and j in SENT)
    if not delays:
        return None

    def pct(p: float) -> float:
        return round(delays[min(len(delays) - 1, round(p * (len(delays) - 1)))], 2)

    return {"p50": pct(0.5), "p95": pct(0.95), "max": round(delays[-1], 2), "n": len(delays)}


def reference_encode(model: Any, texts: list[str]) -> dict[str, Any]:
    """The same chunks through sentence-transformers' ``encode`` alone, batch 32, nothing else
    running: what the pipeline's model calls are compared with."""
    tokens = sum(
        len(ids)
        for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)[
            "input_ids"
        ]
    )
    model.encode(texts[:32], batch_size=32)  # warm
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    seconds = time.perf_counter() - started
    return {
        "chunks": len(texts),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def pdf_pages(data: bytes) -> int:
    return len(pypdf.PdfReader(io.BytesIO(data)).pages)


def windows(rows: list[dict[str, Any]], words: int = 120, limit: int = 400) -> list[str]:
    """~``words``-word passages of the fiches, the first ``limit`` of them: 120 French words
    are ~210 MiniLM tokens and ~170 of e5's, so both models read every passage whole, as they
    read ingestion's chunks (254 tokens of each model at most)."""
    out: list[str] = []
    for r in rows:
        tokens = r["text"].split()
        out += [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
        if len(out) >= limit:
            break
    return out[:limit]


def model_throughput(models: list[str], texts: list[str], data_dir: Path) -> dict[str, Any]:
    """Each model's speed on the same passages (passage vectors and sentence vectors from one
    call, as ingestion embeds), timed after a warm-up batch."""
    spans = [sentence_spans(t) for t in texts]
    out: dict[str, Any] = {}
    for model in models:
        settings = Settings(data_dir=data_dir)
        settings = settings.model_copy(
            update={"embedding": settings.embedding.model_copy(update={"model": model})}
        )
        embedder = make_embedder(settings)
        embedder.embed_spans(texts[:16], spans[:16])  # load, convert once, warm up
        tokens = sum(embedder.count_tokens(t) for t in texts)
        started, cpu = time.perf_counter(), time.process_time()
        embedder.embed_spans(texts, spans)
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu
        out[model] = {
            "texts": len(texts),
            "tokens": tokens,
            "seconds": round(seconds, 2),
            "texts_per_s": round(len(texts) / seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "cpu_s_per_text": round(cpu_s / len(texts), 4),
        }
        print(
            f"{model}: {len(texts)} passages, {tokens} tokens in {seconds:.1f}s = "
            f"{out[model]['texts_per_s']} passages/s, {out[model]['tokens_per_s']} tokens/s"
        )
    first = out[models[0]]
    for model in models[1:]:
        out[model]["speed_vs_first"] = round(out[model]["texts_per_s"] / first["texts_per_s"], 3)
        out[model]["tokens_per_s_vs_first"] = round(
            out[model]["tokens_per_s"] / first["tokens_per_s"], 3
        )
        print(
            f"{model} vs {models[0]} on the same passages: {out[model]['speed_vs_first']}x "
            f"the passages/s, {out[model]['tokens_per_s_vs_first']}x the tokens/s"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="a folder with a BEIR-layout corpus.jsonl poured in as text documents "
        "(default: DATASETS/fr_service_public_qa)",
    )
    parser.add_argument("--limit", type=int, default=None, help="corpus documents (default: all)")
    parser.add_argument(
        "--models",
        default="all-MiniLM-L6-v2,multilingual-e5-small",
        help="embedding models timed on the same passages (comma-separated; '' skips)",
    )
    parser.add_argument(
        "--models-only", action="store_true", help="time the models alone, not the pipeline"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="send the corpus at this many files a second, one a request (default: 50 a "
        "request, as fast as the API takes them)",
    )
    parser.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="skip the reference encode of the same chunks (about 60 %% of the pipeline's time)",
    )
    args = parser.parse_args()
    fixtures = args.datasets / "doc_fixtures"
    corpus = (args.dataset or args.datasets / "fr_service_public_qa") / "corpus.jsonl"
    if not fixtures.is_dir() or not corpus.is_file():
        print(f"datasets not found under {args.datasets}", file=sys.stderr)
        sys.exit(2)

    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.models_only:
        with tempfile.TemporaryDirectory() as tmp:
            speeds = model_throughput(models, windows(rows), Path(tmp))
        print(json.dumps({"bench": "ingest", "models": speeds}))
        return

    instrument()
    pdfs = [(p.name, p.read_bytes()) for p in sorted((fixtures / "pdf").glob("*.pdf"))]
    others = [
        (p.name, p.read_bytes())
        for p in sorted(fixtures.rglob("*"))
        if p.is_file()
        and p.suffix != ".pdf"
        and p.parent.name != "expected_markdown"
        and p.name != "SOURCE.md"
    ]
    rows = rows[: args.limit] if args.limit else rows
    fiches = [(f"{r['_id']}.txt", r["text"].encode()) for r in rows]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        with TestClient(create_app(settings)) as client:
            rt = client.app.state.runtime  # type: ignore[attr-defined]
            rt.catalog.tenants.create("bench")
            key, _ = rt.catalog.tenants.create_key("bench")
            auth = {"Authorization": f"Bearer {key}"}
            # Warm-up outside the measure: model load and first unstructured import (~10 s).
            run(client, auth, [("warm.md", b"# Warm up\n\nFirst document.")], "warm")
            STAGES.clear()
            PADDING.update(real=0, padded=0, calls=0)
            EMBEDDED.clear()
            warm_calls = rt.models.batcher.calls
            pdf = run(client, auth, pdfs, "pdf")
            pdf_stages = dict(STAGES)
            STAGES.clear()
            mixed = run(client, auth, others + fiches, "mixed", args.rate)
            mixed_stages = dict(STAGES)
            model_calls = rt.models.batcher.calls - warm_calls
            padding = dict(PADDING)  # before the reference's own calls
            reference = (
                reference_encode(rt.models.embedder._model, list(EMBEDDED))
                if args.reference
                else None
            )
        speeds = model_throughput(models, windows(rows), Path(tmp)) if models else {}

    pages = sum(pdf_pages(d) for _, d in pdfs)
    total_docs = pdf["documents"] + mixed["documents"]
    total_seconds = pdf["seconds"] + mixed["seconds"]
    total_chunks = pdf["chunks"] + mixed["chunks"]
    total_pages = pages + len(fiches) + len(others)
    stages = {
        k: round(pdf_stages.get(k, 0) + mixed_stages.get(k, 0), 2)
        for k in set(pdf_stages) | set(mixed_stages)
    }
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "bench": "ingest",
        "documents": total_docs,
        "failed": len(pdf["failed"]) + len(mixed["failed"]),
        "pages": total_pages,
        "chunks": total_chunks,
        "seconds": round(total_seconds, 2),
        "documents_per_s": round(total_docs / total_seconds, 2),
        "pages_per_s": round(total_pages / total_seconds, 2),
        "chunks_per_s": round(total_chunks / total_seconds, 2),
        "pdf_text_pages_per_s": round(pages / pdf["seconds"], 2),
        "pdf_pages": pages,
        "embed_chunks_per_s": round(total_chunks / stages["embed"], 1)
        if stages.get("embed")
        else None,
        "chunks_per_model_call": round(total_chunks / max(1, model_calls), 1),
        "model": settings.embedding.model,
        # Progressive indexing: from the upload request to searchable (terms, entities,
        # graph) and to ready (embedded), per document, while the corpus was poured in.
        "rate": args.rate,
        "fiches_to_searchable_s": mixed["to_searchable_s"],
        "fiches_to_ready_s": mixed["to_ready_s"],
        "pdf_to_searchable_s": pdf["to_searchable_s"],
        "tokens_embedded": padding["real"],
        "padding_share": round(1 - padding["real"] / padding["padded"], 3)
        if padding["padded"]
        else None,
        "pipeline_tokens_per_s": round(padding["real"] / stages["embed"], 1)
        if stages.get("embed")
        else None,
        "reference_encode": reference,
        "stage_seconds": dict(sorted(stages.items())),
        "peak_rss_mb": round(peak_rss_mb),
        "models": speeds,
    }
    print(
        f"PDF fixtures: {len(pdfs)} files, {pages} pages in {pdf['seconds']:.1f}s "
        f"= {result['pdf_text_pages_per_s']} pages/s end to end ({pdf['chunks']} chunks)"
    )
    print(
        f"Other fixtures + {len(fiches)} service-public fiches: {mixed['documents']} documents, "
        f"{mixed['chunks']} chunks in {mixed['seconds']:.1f}s"
    )
    print(f"failures: {pdf['failed'] + mixed['failed']}")
    print("stage seconds:", result["stage_seconds"])
    print(
        f"embedding: {result['embed_chunks_per_s']} chunks/s, "
        f"{result['chunks_per_model_call']} chunks per model call; "
        f"peak RSS {result['peak_rss_mb']} MB"
    )
    if result["pipeline_tokens_per_s"] and reference:
        result["pipeline_vs_reference"] = round(
            result["pipeline_tokens_per_s"] / reference["tokens_per_s"], 3
        )
    print(
        f"time to searchable (upload request → terms, entities, graph published), fiches: "
        f"{mixed['to_searchable_s']}; to ready (embedded): {mixed['to_ready_s']}"
    )
    print(
        f"padding share {result['padding_share']}; tokens embedded/s in the pipeline's model "
        f"calls {result['pipeline_tokens_per_s']} vs reference encode alone (batch 32) "
        f"{reference and reference['tokens_per_s']}: {result.get('pipeline_vs_reference')}x"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
