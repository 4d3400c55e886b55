"""Retrieval benchmark on a BEIR-layout dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv).

    .venv/bin/python bench/retrieval.py --dataset ../shared/datasets/fr_service_public_qa

Ingests the corpus through the real pipeline (HTTP upload, embedded worker), scores dense,
sparse, hybrid and hybrid+graph retrieval (nDCG@10, Recall@10, Recall@100, MRR@10; documents
ranked by their best chunk), then measures /v1/search latency over HTTP against a `gedrag up`
process at 1 and 8 concurrent clients. Prints figures, then one JSON line.

Two embedding models side by side, each with its release's settings, in one run (issue #25):

    .venv/bin/python bench/retrieval.py --dataset ../shared/datasets/fr_service_public_qa \
        --release minilm --release default \
        --questions evaluation/suites/data/fr_everyday/qa_ragas.jsonl

``--questions`` adds question sets written apart over the same corpus (JSON lines with ``id``,
``question`` and ``relevant_ids``, the evaluation suites' layout); each is scored separately.
With more than one ``--release`` the JSON line holds one entry per release under ``releases``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from fastapi.testclient import TestClient

from core.domain import DocumentFilter
from core.settings import Settings
from evaluation.release import load_release
from serving.app import create_app
from stores.vectors import SearchFilter

MODES: dict[str, dict[str, Any]] = {
    "dense": {"mode": "dense", "graph_expansion": False},
    "sparse": {"mode": "sparse", "graph_expansion": False},
    "hybrid": {"mode": "hybrid", "graph_expansion": False},
    "hybrid+graph": {"mode": "hybrid", "graph_expansion": True},
}


def load(dataset: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, set[str]]]:
    corpus = [json.loads(line) for line in (dataset / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (dataset / "queries.jsonl").read_text().splitlines()]
    qrels: dict[str, set[str]] = {}
    for line in (dataset / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")[:3]
        if float(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    return corpus, [q for q in queries if q["_id"] in qrels], qrels


def load_questions(path: Path) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """A question set in the evaluation suites' layout, as BEIR queries and qrels (questions
    without a relevant document are left out: they score no ranking)."""
    queries, qrels = [], {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("relevant_ids"):
            queries.append({"_id": row["id"], "text": row["question"]})
            qrels[row["id"]] = set(row["relevant_ids"])
    return queries, qrels


def metrics(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    mrr = next((1 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0)
    return {
        "ndcg@10": dcg / ideal if ideal else 0.0,
        "recall@10": len(relevant & set(ranked[:10])) / len(relevant),
        "recall@100": len(relevant & set(ranked[:100])) / len(relevant),
        "mrr@10": mrr,
    }


def ingest(
    client: TestClient, auth: dict[str, str], corpus: list[dict[str, Any]]
) -> dict[str, str]:
    """Upload every document; returns gedrag document id -> dataset id."""
    ids: dict[str, str] = {}
    jobs: list[str] = []
    for start in range(0, len(corpus), 50):
        rows = corpus[start : start + 50]
        files = [
            (
                "files",
                (f"{r['_id']}.txt", ((r.get("title") or "") + "\n\n" + r["text"]).strip().encode()),
            )
            for r in rows
        ]
        resp = client.post(
            "/v1/documents/batch", headers=auth, files=files, data={"collection": "bench"}
        )
        resp.raise_for_status()
        for row, item in zip(rows, resp.json()["items"], strict=True):
            ids[item["document_id"]] = row["_id"]
            if item["job_id"]:
                jobs.append(item["job_id"])
    pending = set(jobs)
    while pending:
        for job_id in list(pending):
            state = client.get(f"/v1/jobs/{job_id}", headers=auth).json()["state"]
            if state in ("succeeded", "failed"):
                pending.discard(job_id)
        time.sleep(0.5)
    return ids


def reused_ids(rt: Any) -> dict[str, str]:
    """gedrag document id -> dataset id, for a corpus ingested by an earlier run."""
    tenant = rt.catalog.tenants.get("bench").id
    ids: dict[str, str] = {}
    cursor = None
    while True:
        page = rt.catalog.documents.page(tenant, DocumentFilter(), cursor=cursor, limit=200)
        ids.update({d.id: d.versions[0].filename.rsplit(".", 1)[0] for d in page.items})
        cursor = page.next_cursor
        if cursor is None:
            return ids


Rankings = dict[str, dict[str, list[str]]]  # mode -> query id -> dataset ids, best first


def evaluate(
    app: Any,
    tenant_id: str,
    queries: list[dict[str, Any]],
    qrels: dict[str, set[str]],
    ids: dict[str, str],
    rankings: Rankings | None = None,
) -> dict[str, dict[str, float]]:
    """Mean metrics per mode; ``rankings``, when given, receives every query's ranking."""
    retriever = app.state.qa.retriever
    base = retriever.config
    results: dict[str, dict[str, float]] = {}
    flt = SearchFilter(tenant_id=tenant_id)
    for name, overrides in MODES.items():
        cfg = base.model_copy(update={**overrides, "top_k": 100, "candidates": 200})
        totals: dict[str, float] = {}
        wall: list[float] = []
        cpu: list[float] = []
        for q in queries:
            started, used = time.perf_counter(), time.process_time()
            found = retriever.search(q["text"], flt, config=cfg)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
            ranked: list[str] = []
            for p in found.passages:
                did = ids.get(p.document_id)
                if did and did not in ranked:
                    ranked.append(did)
            if rankings is not None:
                rankings.setdefault(name, {})[q["_id"]] = ranked
            for k, v in metrics(ranked, qrels[q["_id"]]).items():
                totals[k] = totals.get(k, 0.0) + v
        results[name] = {k: round(v / len(queries), 4) for k, v in totals.items()}
        print(f"{name:>13}: " + "  ".join(f"{k} {v:.3f}" for k, v in results[name].items()))
        # In-process search time (top 100 of 200 candidates), wall and CPU (every thread of
        # the process): CPU time holds when other work shares the cores, wall time does not.
        wall.sort()
        cpu.sort()
        results[name] |= {
            "search_p50_ms": round(statistics.median(wall), 1),
            "search_p95_ms": round(wall[int(0.95 * (len(wall) - 1))], 1),
            "search_cpu_p50_ms": round(statistics.median(cpu), 1),
            "search_cpu_p95_ms": round(cpu[int(0.95 * (len(cpu) - 1))], 1),
        }
        print(
            f"{'':>13}  search p50 {results[name]['search_p50_ms']} ms, p95 "
            f"{results[name]['search_p95_ms']} ms (CPU {results[name]['search_cpu_p50_ms']} / "
            f"{results[name]['search_cpu_p95_ms']} ms)"
        )
    return results


def compare(
    ours: Rankings, theirs: Rankings, qrels: dict[str, set[str]]
) -> dict[str, dict[str, float]]:
    """Per mode, against rankings saved by an earlier run (``--rankings``) on the same queries:
    the share of queries whose top-10 documents are the same set, the share ranked in the same
    order, and the nDCG@10 difference (ours - theirs)."""
    out: dict[str, dict[str, float]] = {}
    for mode, by_query in ours.items():
        saved = theirs.get(mode, {})
        common = [q for q in by_query if q in saved]
        if not common:
            continue
        same_set = sum(set(by_query[q][:10]) == set(saved[q][:10]) for q in common)
        same_order = sum(by_query[q][:10] == saved[q][:10] for q in common)
        ndcg = [
            metrics(by_query[q], qrels[q])["ndcg@10"] - metrics(saved[q], qrels[q])["ndcg@10"]
            for q in common
        ]
        out[mode] = {
            "queries": len(common),
            "same_top10_set": round(same_set / len(common), 4),
            "same_top10_order": round(same_order / len(common), 4),
            "ndcg@10_delta": round(sum(ndcg) / len(common), 4),
        }
        print(
            f"{mode:>13} vs saved: same top-10 documents {same_set}/{len(common)}, "
            f"same order {same_order}/{len(common)}, nDCG@10 {out[mode]['ndcg@10_delta']:+.4f}"
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latency(
    data_dir: Path, key: str, queries: list[str], model: str
) -> dict[str, dict[str, float]]:
    port = free_port()
    env = {
        **os.environ,
        "GEDRAG_DATA_DIR": str(data_dir),
        "GEDRAG_API__PORT": str(port),
        "GEDRAG_EMBEDDING__MODEL": model,
    }
    gedrag = str(Path(sys.executable).with_name("gedrag"))
    log = (data_dir / "server.log").open("w")
    server = subprocess.Popen([gedrag, "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        # Warm the model (and a store that loads on its first search): minutes when loaded.
        with httpx.Client(base_url=url, headers=auth, timeout=600) as c:
            c.post("/v1/search", json={"query": "warm up"}).raise_for_status()

        def one(q: str) -> float:
            with httpx.Client(base_url=url, headers=auth, timeout=30) as c:
                start = time.perf_counter()
                c.post("/v1/search", json={"query": q}).raise_for_status()
                return (time.perf_counter() - start) * 1000

        out = {}
        for clients in (1, 8):
            with ThreadPoolExecutor(clients) as pool:
                times = sorted(pool.map(one, queries))
            out[f"{clients}_client{'s' if clients > 1 else ''}"] = {
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                "qps": round(clients * 1000 / statistics.mean(times), 1),
            }
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def run_release(
    release_name: str,
    args: argparse.Namespace,
    corpus: list[dict[str, Any]],
    sets: dict[str, tuple[list[dict[str, Any]], dict[str, set[str]]]],
    data_dir: Path,
) -> dict[str, Any]:
    """Ingest (or reuse) the corpus under one release and score every question set."""
    release = load_release(release_name)
    settings = release.settings(Settings(data_dir=data_dir))
    model = settings.embedding.model
    print(f"== release {release_name} ({model})")
    start = time.perf_counter()
    quality: dict[str, Any] = {}
    with TestClient(create_app(settings)) as client:
        rt = client.app.state.runtime  # type: ignore[attr-defined]
        reuse = any(t.name == "bench" for t in rt.catalog.tenants.all())
        if not reuse:
            rt.catalog.tenants.create("bench")
        key, _ = rt.catalog.tenants.create_key("bench")
        auth = {"Authorization": f"Bearer {key}"}
        ids = reused_ids(rt) if reuse else ingest(client, auth, corpus)
        ingest_s = time.perf_counter() - start
        client.post("/v1/search", headers=auth, json={"query": "warm"}).raise_for_status()
        print(
            f"{args.dataset.name}: {len(corpus)} documents "
            f"{'reused' if reuse else 'ingested'} in {ingest_s:.0f}s"
        )
        tenant = rt.catalog.tenants.get("bench").id
        rankings: Rankings = {}
        for name, (queries, qrels) in sets.items():
            print(f"-- {name}: {len(queries)} queries")
            quality[name] = evaluate(client.app, tenant, queries, qrels, ids, rankings)
    if args.rankings:
        args.rankings.write_text(json.dumps(rankings))
    first_queries, first_qrels = next(iter(sets.values()))
    versus = {}
    if args.compare:
        versus = compare(rankings, json.loads(args.compare.read_text()), first_qrels)
    timing = (
        {} if args.no_latency else latency(data_dir, key, [q["text"] for q in first_queries], model)
    )
    for name, t in timing.items():
        print(f"/v1/search {name}: p50 {t['p50_ms']} ms, p95 {t['p95_ms']} ms, {t['qps']} q/s")
    return {
        "model": model,
        "ingest_s": round(ingest_s, 1),
        "reused_index": reuse,
        # The dataset's own questions keep the key earlier runs printed.
        "quality": quality[args.dataset.name],
        **{f"quality_{name}": q for name, q in quality.items() if name != args.dataset.name},
        "latency": timing,
        **({"versus_saved": versus} if versus else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument(
        "--limit-queries",
        type=int,
        default=None,
        help="use N queries spread evenly over the set (datasets are often ordered by topic)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the ingested corpus here; a folder that already holds it is reused",
    )
    parser.add_argument(
        "--rankings", type=Path, default=None, help="save every query's ranking (JSON) here"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="compare the rankings with ones saved by --rankings (e.g. another vector store)",
    )
    parser.add_argument(
        "--no-latency", action="store_true", help="skip the /v1/search latency over HTTP"
    )
    parser.add_argument(
        "--release",
        action="append",
        default=[],
        help="pipeline release to run (repeatable: side by side in one run; default: default)",
    )
    parser.add_argument(
        "--questions",
        action="append",
        type=Path,
        default=[],
        help="more questions over the same corpus (suite layout: id, question, relevant_ids)",
    )
    args = parser.parse_args()
    if not (args.dataset / "corpus.jsonl").is_file():
        print(f"no BEIR dataset at {args.dataset}", file=sys.stderr)
        sys.exit(2)
    corpus, queries, qrels = load(args.dataset)
    if args.limit_queries and args.limit_queries < len(queries):
        step = len(queries) / args.limit_queries
        queries = [queries[int(i * step)] for i in range(args.limit_queries)]

    sets = {args.dataset.name: (queries, qrels)}
    for path in args.questions:
        sets[path.parent.name if path.name == "qa_ragas.jsonl" else path.stem] = load_questions(
            path
        )
    releases = args.release or ["default"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in releases:
            base = args.data_dir or Path(tmp)
            # One index per release; a single release keeps --data-dir as it is (earlier runs').
            data_dir = base if len(releases) == 1 else base / name
            results[name] = run_release(name, args, corpus, sets, data_dir)
    if len(releases) > 1:
        print(f"{'release':<12} {'set':<26} " + " ".join(f"{m:>12}" for m in MODES))
        for name, r in results.items():
            for set_name in sets:
                q = r["quality"] if set_name == args.dataset.name else r[f"quality_{set_name}"]
                row = " ".join(f"{q[m]['ndcg@10']:>12.4f}" for m in MODES)
                print(f"{name:<12} {set_name:<26} {row}")
    head = {
        "bench": "retrieval",
        "dataset": args.dataset.name,
        "documents": len(corpus),
        "queries": len(queries),
    }
    only = results[releases[0]]
    print(json.dumps({**head, **only} if len(releases) == 1 else {**head, "releases": results}))


if __name__ == "__main__":
    main()
