"""Scale of the embedded vector store (Qdrant Edge) with synthetic points shaped like gedrag's.

    .venv/bin/python bench/scale.py --sizes 10000,100000 [--quantization int8] [--dense-on-disk]

For each size, writes that many points through the VectorStore Protocol (``upsert`` in calls of
256, as ingestion writes a few documents' chunks), optimises (HNSW), then, in a fresh process
(so that its memory is the store's, not the generator's): opens the folder, runs hybrid queries
with a tenant filter as retrieval does (dense top 50 + sparse top 50, then the union rescored by
its best sentence: ``score_sentences``), and measures the dense search's recall@10 against an
exact scan (what HNSW and quantisation lose). Prints a table, then one JSON line.

The points: 384-d dense vectors drawn around 300 centres (a Gaussian mixture, normalised, cosine
~0.75 to their centre), because real embeddings cluster by topic and uniform random vectors are
HNSW's worst case (their graph takes several times longer to build and searches it worse); ~40
sparse terms per point with Zipf-distributed ids over 30,000 (word frequencies); 6 sentence
vectors per point near its dense vector (cosine ~0.9); a payload of tenant (10 tenants),
collection, document (10 chunks each), version, tags, upload time and ~1 KB of text.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import qdrant_edge as qe

from stores.vectors import DENSE, SearchFilter, VectorPoint
from stores.vectors.edge import EdgeOptions, EdgeVectorStore, to_filter

DIM = 384
CENTRES = 300
TENANTS = 10
VOCABULARY = 30_000
SENTENCES = 6
WRITE_CALL = 256  # points per upsert call
CANDIDATES = 50  # RetrievalSettings.candidates
COLLECTION = "gedrag_scale"
LOREM = (
    "Le présent contrat de maintenance couvre les échelles, les nacelles et les équipements "
    "de levage du site de Lyon. Les inspections ont lieu chaque trimestre. "
) * 8


class Generator:
    """Deterministic points and queries (seeded), made batch by batch to bound memory."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        centres = self.rng.standard_normal((CENTRES, DIM)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def _around(self, centre_ids: np.ndarray, spread: float) -> np.ndarray:
        noise = self.rng.standard_normal((len(centre_ids), DIM)).astype(np.float32)
        x = self.centres[centre_ids] + spread * noise / np.sqrt(DIM)
        unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
        return unit

    def _terms(self, n: int) -> list[int]:
        return self._term_rows(1, n)[0]

    def _term_rows(self, rows: int, n: int) -> list[list[int]]:
        """``n`` distinct Zipf-distributed term ids per row (word frequencies)."""
        draws = np.minimum(self.rng.zipf(1.3, size=(rows, n * 2)), VOCABULARY - 1)
        return [[int(i) for i in np.unique(row)[:n]] for row in draws]

    def points(self, start: int, count: int) -> list[VectorPoint]:
        centre_ids = self.rng.integers(0, CENTRES, size=count)
        dense = self._around(centre_ids, 0.9)
        noise = self.rng.standard_normal((count, SENTENCES, DIM)).astype(np.float32)
        sentences = dense[:, None, :] + 0.5 * noise / np.sqrt(DIM)
        sentences /= np.linalg.norm(sentences, axis=2, keepdims=True)
        terms = self._term_rows(count, 40)
        weights = np.round(self.rng.uniform(0.3, 2.5, size=(count, 40)), 3).tolist()
        dense_rows, sentence_rows = dense.tolist(), sentences.tolist()
        out = []
        for k in range(count):
            i = start + k
            out.append(
                VectorPoint(
                    id=_uuid(i),
                    dense=dense_rows[k],
                    sparse_indices=terms[k],
                    sparse_values=weights[k][: len(terms[k])],
                    payload={
                        "tenant_id": f"t{i % TENANTS}",
                        "collection": f"c{(i // 1000) % 5}",
                        "document_id": f"d{i // 10}",
                        "version_id": "v1",
                        "tags": [f"tag{(i // 10) % 8}"],
                        "uploaded_at": 1.7e9 + i,
                        "text": f"chunk {i}. {LOREM}",
                    },
                    sentences=sentence_rows[k],
                )
            )
        return out

    def queries(self, n: int) -> list[tuple[list[float], list[int], str]]:
        dense = self._around(self.rng.integers(0, CENTRES, size=n), 1.1)
        return [(dense[k].tolist(), self._terms(5), f"t{k % TENANTS}") for k in range(n)]


def _uuid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def rss() -> dict[str, float]:
    """Resident memory in MB: all, anonymous (the heap) and file-backed (mapped files the
    kernel may drop under pressure)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def disk_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def options(args: argparse.Namespace) -> EdgeOptions:
    return EdgeOptions(
        dense_on_disk=args.dense_on_disk,
        sentences_on_disk=not args.sentences_in_ram,
        quantization=args.quantization,
    )


def load(size: int, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write ``size`` points, then optimise; returns the rates."""
    gen = Generator()
    store = EdgeVectorStore(COLLECTION, path=folder, options=options(args))
    store.ensure_collection(DIM)
    write_s = 0.0
    generate_s = 0.0
    report_every = max(size // 10, WRITE_CALL)
    anon_peak = 0.0  # the heap's high-water mark, sampled (VmHWM counts mapped files too)
    for start in range(0, size, WRITE_CALL):
        t = time.perf_counter()
        batch = gen.points(start, min(WRITE_CALL, size - start))
        generate_s += time.perf_counter() - t
        t = time.perf_counter()
        store.upsert(batch)
        write_s += time.perf_counter() - t
        if (start // WRITE_CALL) % (report_every // WRITE_CALL) == 0 and start:
            now = rss()
            anon_peak = max(anon_peak, now.get("RssAnon", 0.0))
            print(
                f"  {start:,} points, {start / write_s:,.0f} points/s, RSS {now.get('VmRSS')} "
                f"MB (anon {now.get('RssAnon')})",
                file=sys.stderr,
            )
    t = time.perf_counter()
    store.flush()
    flush_s = time.perf_counter() - t
    t = time.perf_counter()
    optimized = store.optimize()
    optimize_s = time.perf_counter() - t
    info = store.info()
    peak = rss()
    anon_peak = max(anon_peak, peak.get("RssAnon", 0.0))
    store.close()
    return {
        "insert_points_per_s": round(size / write_s),
        "generate_s": round(generate_s, 1),
        "flush_s": round(flush_s, 2),
        "optimize_s": round(optimize_s, 1),
        "optimized": optimized["optimized"],
        "segments": info["segments"],
        "load_peak_rss_mb": peak.get("VmHWM"),
        "load_peak_anon_mb": anon_peak,
    }


def serve(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """In a fresh process: open, query, measure."""
    before = rss()
    t = time.perf_counter()
    store = EdgeVectorStore(COLLECTION, path=folder, options=options(args))
    points = store.info()["points"]
    open_s = time.perf_counter() - t
    gen = Generator(seed=99)
    queries = gen.queries(args.queries)
    for q, terms, tenant in queries[:10]:  # warm up
        hybrid(store, q, terms, tenant)
    timings: list[float] = []
    cpu: list[float] = []
    stages: dict[str, list[float]] = {"dense": [], "sparse": [], "sentences": []}
    for q, terms, tenant in queries:
        t, c = time.perf_counter(), time.process_time()
        spent = hybrid(store, q, terms, tenant)
        timings.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        for k, v in spent.items():
            stages[k].append(v)
    serving = rss()
    recall = dense_recall(store, queries[: args.recall_queries])
    store.close()
    timings.sort()
    cpu.sort()
    return {
        "points": points,
        "open_s": round(open_s, 2),
        "hybrid_p50_ms": round(statistics.median(timings), 1),
        "hybrid_p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 1),
        # CPU time of the process (every thread) per query: what the query costs with the
        # cores to itself, when other work shares them (wall time then waits for a core).
        "hybrid_cpu_p50_ms": round(statistics.median(cpu), 1),
        "hybrid_cpu_p95_ms": round(cpu[int(0.95 * (len(cpu) - 1))], 1),
        "stage_p50_ms": {k: round(statistics.median(v), 1) for k, v in stages.items()},
        "rss_mb": serving.get("VmRSS"),
        "rss_anon_mb": serving.get("RssAnon"),
        "rss_file_mb": serving.get("RssFile"),
        "rss_at_start_mb": before.get("VmRSS"),
        "dense_recall@10": recall,
    }


def hybrid(
    store: EdgeVectorStore, q: list[float], terms: list[int], tenant: str
) -> dict[str, float]:
    """What retrieval asks the store for one hybrid query (Retriever.search)."""
    flt = SearchFilter(tenant_id=tenant)
    t0 = time.perf_counter()
    dense = store.search_dense(q, flt, CANDIDATES)
    t1 = time.perf_counter()
    sparse = store.search_sparse(terms, [1.0] * len(terms), flt, CANDIDATES)
    t2 = time.perf_counter()
    union = list({h.id: h for h in [*dense, *sparse]})
    store.score_sentences(q, union, flt)
    t3 = time.perf_counter()
    return {"dense": (t1 - t0) * 1000, "sparse": (t2 - t1) * 1000, "sentences": (t3 - t2) * 1000}


def dense_recall(
    store: EdgeVectorStore, queries: list[tuple[list[float], list[int], str]]
) -> float:
    """Recall@10 of the served dense search (HNSW, quantised when so configured) against an
    exact scan of the original vectors, same tenant filter."""
    physical = store.engine.resolve(store.collection)
    shard = store.engine.shard(physical)
    assert shard is not None
    found = 0
    for q, _, tenant in queries:
        flt = SearchFilter(tenant_id=tenant)
        served = {h.id for h in store.search_dense(q, flt, 10)}
        exact = shard.engine.query(
            qe.QueryRequest(
                limit=10,
                query=qe.Query.Nearest(q, using=DENSE),
                filter=to_filter(flt),
                params=qe.SearchParams(
                    exact=True, quantization=qe.QuantizationSearchParams(ignore=True)
                ),
            )
        )
        found += len(served & {str(p.id) for p in exact})
    return round(found / (10 * len(queries)), 4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated point counts")
    parser.add_argument("--quantization", choices=["none", "int8"], default="none")
    parser.add_argument("--dense-on-disk", action="store_true")
    parser.add_argument("--sentences-in-ram", action="store_true")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to build (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the folders")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:  # the child process
        print(json.dumps(serve(args.serve, args)))
        return
    base = args.dir or Path(tempfile.mkdtemp(prefix="gedrag-scale-"))
    results: dict[str, Any] = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        folder = base / f"edge-{size}"
        shutil.rmtree(folder, ignore_errors=True)
        print(f"{size:,} points → {folder}", file=sys.stderr)
        started = time.perf_counter()
        loaded = load(size, folder, args)
        child = subprocess.run(
            [sys.executable, __file__, "--serve", str(folder), *_flags(args)],
            capture_output=True,
            text=True,
            check=True,
        )
        served = json.loads(child.stdout.strip().splitlines()[-1])
        results[str(size)] = {
            **loaded,
            **served,
            "disk_mb": disk_mb(folder),
            "wall_s": round(time.perf_counter() - started, 1),
        }
        r = results[str(size)]
        print(
            f"{size:>9,}: insert {r['insert_points_per_s']:,} points/s, optimise "
            f"{r['optimize_s']} s, open {r['open_s']} s, RSS {r['rss_mb']} MB (anon "
            f"{r['rss_anon_mb']}, files {r['rss_file_mb']}), disk {r['disk_mb']} MB, hybrid "
            f"p50 {r['hybrid_p50_ms']} ms / p95 {r['hybrid_p95_ms']} ms (CPU "
            f"{r['hybrid_cpu_p50_ms']} / {r['hybrid_cpu_p95_ms']} ms), dense recall@10 "
            f"{r['dense_recall@10']}"
        )
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "scale",
                "engine": "qdrant-edge-py",
                "cores": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "options": vars(options(args)),
                "results": results,
            }
        )
    )


def _flags(args: argparse.Namespace) -> list[str]:
    flags = ["--quantization", args.quantization, "--queries", str(args.queries)]
    flags += ["--recall-queries", str(args.recall_queries)]
    if args.dense_on_disk:
        flags.append("--dense-on-disk")
    if args.sentences_in_ram:
        flags.append("--sentences-in-ram")
    return flags


if __name__ == "__main__":
    main()
