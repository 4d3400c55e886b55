"""Fusion weights per question language, chosen by cross-validation.

    .venv/bin/python bench/fusion.py --suite fr_service_public_qa --suite squad_v2_dev_subset \
        --held-out fr_everyday --cv 5

Each suite's corpus is ingested once under the release's configuration (the evaluation
namespace, shared with ``gedrag eval run`` and bench/answers.py); every question's ranked list
from each retrieval signal (dense, sparse, graph, best sentence vector, best sentence by terms)
is computed once with the release's retrieval settings (``candidates`` per list) and cached.
Weighted min-max fusion is then replayed offline for every point of a grid over the weight
simplex: documents ranked by their best chunk, nDCG@10 against the suite's relevant ids.

Weights are chosen per language (a question's detected language picks its weights at query
time): French ones on the French tuning questions, English ones on the English ones. ``--cv K``
prints each fold's choice and held-out nDCG@10, then the weights chosen on all tuning questions
of the language and every suite's nDCG@10 with them (``--held-out`` suites never take part in
choosing). Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import Settings
from evaluation import suites
from evaluation.release import load_release
from evaluation.runner import open_namespace
from retrieval import factory
from stores.vectors import SearchFilter
from textmodels.language import detect_language

SIGNALS = ("dense", "sparse", "graph", "sentence", "sentence_terms")
STEP = 0.1


def cached_lists(
    settings: Settings, release_ref: str, suite: suites.Suite, candidates: int
) -> list[dict[str, Any]]:
    """Per question: its language, relevant ids, and each signal's list of (suite doc id,
    min-max-normalised score), best first."""
    release = load_release(release_ref)
    key = hashlib.sha256(
        json.dumps(
            [suite.id, release.config["ingestion"], release.config["retrieval"], candidates]
        ).encode()
    ).hexdigest()[:16]
    cache = settings.data_dir / "fusion-cache" / f"{suite.name}-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    started = time.perf_counter()
    ns = open_namespace(settings, release, suite, lambda stage, done, total: None)
    rows = []
    try:
        retriever = factory.qa(ns.runtime).retriever
        cfg = retriever.config.model_copy(
            update={"candidates": candidates, "graph_expansion": True}
        )
        flt = SearchFilter(tenant_id=ns.tenant_id)
        for q in suite.questions:
            _, ranked = retriever.ranked(q.question, flt, cfg, every_signal=True)
            lists = {}
            for signal, hits in ranked.items():
                if not hits:
                    continue
                top, bottom = hits[0].score, hits[-1].score
                span = top - bottom
                lists[signal] = [
                    (
                        ns.doc_ids.get(str(h.payload.get("document_id")), ""),
                        h.id,
                        (h.score - bottom) / span if span > 0 else 1.0,
                    )
                    for h in hits
                ]
            rows.append(
                {
                    "id": q.id,
                    "language": detect_language(q.question),
                    "relevant": q.relevant_ids,
                    "answerable": q.answerable,
                    "lists": lists,
                }
            )
    finally:
        ns.runtime.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows))
    print(f"{suite.name}: {len(rows)} questions' lists in {time.perf_counter() - started:.0f} s")
    return rows


def named(w: np.ndarray) -> dict[str, float]:
    return {s: round(float(v), 2) for s, v in zip(SIGNALS, w, strict=True)}


def simplex(step: float = STEP) -> np.ndarray:
    """Every weight vector over the signals with non-negative multiples of ``step`` summing to 1."""
    n = round(1 / step)
    points = [
        [c / n for c in combo]
        for combo in itertools.product(range(n + 1), repeat=len(SIGNALS))
        if sum(combo) == n
    ]
    return np.array(points, dtype=np.float32)


def ndcg_matrix(rows: list[dict[str, Any]], weights: np.ndarray) -> np.ndarray:
    """nDCG@10 of every question (rows) under every weight vector (columns)."""
    out = np.zeros((len(rows), len(weights)), dtype=np.float32)
    for i, row in enumerate(rows):
        relevant = set(row["relevant"])
        if not relevant:
            continue
        chunks: dict[str, int] = {}
        docs: list[str] = []
        entries = []
        for s, signal in enumerate(SIGNALS):
            for doc, chunk, score in row["lists"].get(signal, []):
                j = chunks.setdefault(chunk, len(chunks))
                if j == len(docs):
                    docs.append(doc)
                entries.append((j, s, score))
        if not chunks:
            continue
        m = np.zeros((len(chunks), len(SIGNALS)), dtype=np.float32)
        for j, s, score in entries:
            m[j, s] = score
        scores = m @ weights.T  # chunks × weight vectors
        order = np.argsort(-scores, axis=0, kind="stable")
        ideal = sum(1 / math.log2(r + 2) for r in range(min(len(relevant), 10)))
        is_rel = np.array([d in relevant for d in docs])
        doc_index = np.array([hash(d) for d in docs])
        for w in range(len(weights)):
            seen: set[int] = set()
            dcg, rank = 0.0, 0
            for j in order[:, w]:
                h = doc_index[j]
                if h in seen:
                    continue
                seen.add(h)
                if is_rel[j]:
                    dcg += 1 / math.log2(rank + 2)
                rank += 1
                if rank == 10:
                    break
            out[i, w] = dcg / ideal
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", action="append", default=[], help="Tuning suites (repeatable).")
    parser.add_argument("--held-out", action="append", default=[], help="Suites never tuned on.")
    parser.add_argument("--release", default="default")
    parser.add_argument("--data-dir", type=Path, default=Path("var/bench-answers"))
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--cv", type=int, default=5)
    args = parser.parse_args()
    tuning = args.suite or ["fr_service_public_qa", "squad_v2_dev_subset"]
    settings = Settings(data_dir=args.data_dir)
    rows = {
        name: cached_lists(settings, args.release, suites.load_suite(name), args.candidates)
        for name in [*tuning, *args.held_out]
    }
    grid = simplex()
    matrices = {name: ndcg_matrix(r, grid) for name, r in rows.items()}
    release = load_release(args.release)
    current = release.settings(settings).retrieval
    result: dict[str, Any] = {"bench": "fusion", "release": args.release, "grid_points": len(grid)}
    chosen: dict[str, list[float]] = {}
    rng = random.Random(0)
    for lang in ("fr", "en"):
        members = [
            (name, i)
            for name in tuning
            for i, r in enumerate(rows[name])
            if r["language"] == lang and r["relevant"]
        ]
        if not members:
            continue
        rng.shuffle(members)
        folds = [members[f :: args.cv] for f in range(args.cv)]
        held_scores = []
        for f, fold in enumerate(folds):
            train = [m for g, other in enumerate(folds) if g != f for m in other]
            mean = np.mean([matrices[n][i] for n, i in train], axis=0)
            best = int(np.argmax(mean))
            held = float(np.mean([matrices[n][i][best] for n, i in fold]))
            held_scores.append(held)
            print(f"{lang} fold {f}: {named(grid[best])} -> held-out nDCG@10 {held:.4f}")
        mean_all = np.mean([matrices[n][i] for n, i in members], axis=0)
        best = int(np.argmax(mean_all))
        chosen[lang] = grid[best].round(2).tolist()
        cv = float(np.mean(held_scores))
        print(f"{lang}: cross-validated nDCG@10 {cv:.4f}; chosen on all: {named(grid[best])}")
        result[f"cv_{lang}"] = round(float(np.mean(held_scores)), 4)
    result["chosen"] = {lang: named(np.array(w)) for lang, w in chosen.items()}
    result["suites"] = {}
    for name, r in rows.items():
        per_lang = {}
        for lang, w in chosen.items():
            idx = [i for i, row in enumerate(r) if row["language"] == lang and row["relevant"]]
            if idx:
                k = int(np.argmin(np.abs(grid - np.array(w)).sum(axis=1)))
                per_lang[lang] = round(float(np.mean(matrices[name][idx, k])), 4)
        now = []
        for row in r:
            if row["relevant"]:
                cw = current.language_weights.get(row["language"])
                w = (
                    cw.model_dump()
                    if cw
                    else {
                        "dense": current.dense_weight,
                        "sparse": current.sparse_weight,
                        "graph": current.graph_weight,
                        "sentence": current.sentence_weight,
                        "sentence_terms": current.sentence_terms_weight,
                    }
                )
                vec = np.array([w[s] for s in SIGNALS], dtype=np.float32)
                now.append(float(ndcg_matrix([row], vec[None, :])[0, 0]))
        tag = "held out" if name in args.held_out else "tuning"
        print(f"{name:<24} ({tag}) nDCG@10 chosen {per_lang}; release's {np.mean(now):.4f}")
        result["suites"][name] = {
            "chosen": per_lang,
            "release_weights": round(float(np.mean(now)), 4),
            "role": tag,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
