"""Monitoring benchmark (issue #27): what tracing costs, whether the drift detector finds real
shifts and stays quiet on noise, and how many questions a guardrail needs to roll a worse canary
back.

    .venv/bin/python bench/monitoring.py [--data-dir DIR] [--requests 300]

1. **Tracing overhead** on ``/v1/search`` and ``/v1/ask`` (the app in-process, the SQuAD corpus
   ingested through the real pipeline): tracing switched on and off in alternating blocks of
   requests within one run, the same questions in both; p50/p95 of each mode. The trace writer
   is drained after each traced block, off the clock, so an untraced block never pays for it.
2. **Drift detection** (the question-embedding test of the drift report, its default settings:
   MMD with 500 permutations, alpha 0.01): the shared French suite's questions against SQuAD's
   and against fr_everyday (held-out everyday wording), 100 questions per window, 100 draws
   each: detection rate; then 100 random halves of each suite: false alarms.
3. **Canary rollback**: a deliberately worse release (the extractive answerer asked to cover
   every term of a question: it refuses most) as a 20 % canary on SQuAD questions, half of the
   answers rated by simulated users (thumbs up when the answer holds the reference); the
   number of questions asked until the guardrail rolled it back.

Prints its figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from fastapi.testclient import TestClient

from bench.retrieval import ingest, load
from core.settings import MonitoringSettings, Settings
from evaluation import service as evals
from evaluation.correctness import answer_correctness
from evaluation.metrics import percentile
from evaluation.release import load_release
from evaluation.suites import load_suite
from monitoring import drift, online
from serving.app import create_app
from stores.catalog.evaluation import EvalStore

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
SQUAD = DATASETS / "squad_v2_dev_subset"
WORSE = "name: worse\ngeneration: {min_coverage: 1.0, min_similarity: 1.0}\n"


def overhead(
    client: TestClient, auth: dict[str, str], questions: list[str], n: int, block: int
) -> dict[str, Any]:
    monitor = client.app.state.monitor  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for route, field in (("/v1/search", "query"), ("/v1/ask", "question")):
        for q in questions[:20]:  # warm-up, not counted
            client.post(route, headers=auth, json={field: q}).raise_for_status()
        times: dict[bool, list[float]] = {True: [], False: []}
        i = 0
        traced = True
        while min(len(v) for v in times.values()) < n:
            monitor.enabled = traced
            for _ in range(block):
                q = questions[i % len(questions)]
                i += 1
                start = time.perf_counter()
                client.post(route, headers=auth, json={field: q}).raise_for_status()
                times[traced].append((time.perf_counter() - start) * 1000)
            if traced:
                monitor.flush(60)  # off the clock: the next untraced block starts clean
            traced = not traced
        monitor.enabled = True
        on, off = times[True][:n], times[False][:n]
        out[route] = {
            "requests_per_mode": n,
            "traced": {
                "p50_ms": round(percentile(on, 50), 2),
                "p95_ms": round(percentile(on, 95), 2),
            },
            "untraced": {
                "p50_ms": round(percentile(off, 50), 2),
                "p95_ms": round(percentile(off, 95), 2),
            },
            "p95_ratio": round(percentile(on, 95) / percentile(off, 95), 4),
            "p50_ratio": round(percentile(on, 50) / percentile(off, 50), 4),
        }
        print(
            f"{route}: traced p50/p95 {out[route]['traced']}, untraced {out[route]['untraced']}, "
            f"p95 ratio {out[route]['p95_ratio']}"
        )
    monitor.flush(60)
    return out


def detection(embed_queries: Any, trials: int) -> dict[str, Any]:
    cfg = MonitoringSettings()
    judge = drift.Judge(cfg, "reference")
    sets = {
        "fr_service_public_qa": [q.question for q in load_suite("fr_service_public_qa").questions],
        "fr_everyday": [q.question for q in load_suite("fr_everyday").questions],
        "squad_v2_dev_subset": [q.question for q in load_suite("squad_v2_dev_subset").questions],
    }
    every = sorted({q for qs in sets.values() for q in qs})
    started = time.perf_counter()
    vectors = dict(zip(every, embed_queries(every), strict=True))
    print(f"embedded {len(every)} questions in {time.perf_counter() - started:.1f}s")

    def embed(texts: list[str]) -> list[list[float]]:
        return [vectors[t] for t in texts]

    rng = random.Random(0)
    out: dict[str, Any] = {"settings": {"alpha": cfg.alpha, "permutations": cfg.permutations}}
    for other in ("squad_v2_dev_subset", "fr_everyday"):
        base = sets["fr_service_public_qa"]
        hits, pvalues = 0, []
        for _ in range(trials):
            check = judge.questions(rng.sample(base, 100), rng.sample(sets[other], 100), embed)
            hits += check.crossed
            pvalues.append(check.p_value)
        out[f"fr_service_public_qa_vs_{other}"] = {
            "window": 100,
            "trials": trials,
            "detection_rate": hits / trials,
            "median_p": float(np.median(pvalues)),
        }
        print(f"fr_service_public_qa vs {other}: detected {hits}/{trials}")
    for name, qs in sets.items():
        alarms = 0
        for _ in range(trials):
            shuffled = rng.sample(qs, len(qs))
            half = len(qs) // 2
            alarms += judge.questions(shuffled[:half], shuffled[half:], embed).crossed
        out[f"halves_{name}"] = {
            "splits": trials,
            "window": len(qs) // 2,
            "false_alarm_rate": alarms / trials,
        }
        print(f"random halves of {name}: {alarms}/{trials} false alarms")
    return out


def rollback(
    client: TestClient, auth: dict[str, str], rows: list[dict[str, Any]], share: float, tmp: Path
) -> dict[str, Any]:
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    path = tmp / "worse.yaml"
    path.write_text(WORSE)
    worse = evals.register(EvalStore(rt.catalog), load_release(path))
    monitor = client.app.state.monitor  # type: ignore[attr-defined]
    exp = client.post(
        "/v1/experiments",
        headers=auth,
        json={"release": worse.id, "mode": "canary", "share": share},
    )
    exp.raise_for_status()
    exp_id = exp.json()["id"]
    answerable = [r for r in rows if r["ground_truth"]]
    asked = canary = 0
    started = time.perf_counter()
    state = "running"
    while state == "running" and asked < 2000:
        row = answerable[asked % len(answerable)]
        user = f"user-{asked}"
        headers = {**auth, "X-Gedrag-User": user}
        body = client.post("/v1/ask", headers=headers, json={"question": row["question"]}).json()
        asked += 1
        canary += online.in_canary(exp_id, f"user:{user}", share)
        if asked % 2 == 0:  # half of the answers are rated
            good = (
                body["grounded"]
                and answer_correctness(body["answer"], row["ground_truth"]).score >= 0.5
            )
            client.post(
                f"/v1/traces/{body['trace_id']}/feedback",
                headers=auth,
                json={"rating": "up" if good else "down"},
            )
        if asked % 10 == 0:
            monitor.flush(60)
            state = client.get(f"/v1/experiments/{exp_id}", headers=auth).json()["state"]
    final = client.get(f"/v1/experiments/{exp_id}", headers=auth).json()
    result = {
        "release": "worse (min_coverage 1.0)",
        "share": share,
        "state": final["state"],
        "questions_asked": asked,
        "canary_answers": canary,
        "reason": final["reason"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"canary {final['state']} after {asked} questions ({canary} answered by the canary): "
        f"{final['reason']}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data-dir", type=Path, help="keep the ingested SQuAD corpus here (reused)"
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        default=SQUAD,
        help="a SQuAD-layout folder (corpus and qa_ragas_sample250.jsonl); default the shared one",
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per mode and route")
    parser.add_argument("--block", type=int, default=20, help="requests per alternating block")
    parser.add_argument("--trials", type=int, default=100, help="drift draws and splits")
    parser.add_argument("--share", type=float, default=0.2, help="the worse canary's share")
    parser.add_argument(
        "--parts", default="overhead,drift,canary", help="which parts to run (comma-separated)"
    )
    args = parser.parse_args()
    squad: Path = args.dataset
    if not squad.is_dir():
        print(json.dumps({"skipped": f"no dataset at {squad}"}))
        return
    corpus, _, _ = load(squad)
    rows = [
        json.loads(line) for line in (squad / "qa_ragas_sample250.jsonl").read_text().splitlines()
    ]
    questions = [r["question"] for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp) / "var"
        settings = Settings(data_dir=data_dir)
        with TestClient(create_app(settings)) as client:
            rt = client.app.state.runtime  # type: ignore[attr-defined]
            reuse = any(t.name == "bench" for t in rt.catalog.tenants.all())
            if not reuse:
                rt.catalog.tenants.create("bench")
            key, _ = rt.catalog.tenants.create_key("bench")
            auth = {"Authorization": f"Bearer {key}"}
            started = time.perf_counter()
            if not reuse:
                ingest(client, auth, corpus)
            took = time.perf_counter() - started
            print(f"corpus {'reused' if reuse else 'ingested'} in {took:.0f}s")
            for running in client.get("/v1/experiments", headers=auth).json():
                if running["state"] == "running":
                    client.post(f"/v1/experiments/{running['id']}/stop", headers=auth)
            parts = set(args.parts.split(","))
            cost = (
                overhead(client, auth, questions, args.requests, args.block)
                if "overhead" in parts
                else None
            )
            shifts = (
                detection(rt.models.embedder.embed_queries, args.trials)
                if "drift" in parts
                else None
            )
            canary = (
                rollback(client, auth, rows, args.share, Path(tmp)) if "canary" in parts else None
            )
    result = {
        "benchmark": "monitoring",
        "overhead": cost,
        "drift": shifts,
        "canary_rollback": canary,
        "targets": {
            "p95_overhead_max": 1.05,
            "detection_rate_min": 0.95,
            "false_alarm_rate_max": 0.05,
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
