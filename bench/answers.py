"""Answer benchmark: correctness, refusals and answered share of the embedded answerer, per suite.

    .venv/bin/python bench/answers.py --suite fr_service_public_qa --suite squad_v2_dev_subset \
        --held-out fr_everyday --cv 5

Each suite's corpus is ingested once under the release's configuration into the evaluation
namespace (``<data dir>/eval/...``, reused by later runs), every question is searched once and
its passages cached (``<data dir>/answers-cache``); the answerer then runs over the cached
passages, so its settings are compared in seconds.

``--cv K`` chooses the answerer's settings by K-fold cross-validation over the ``--suite`` sets
together (folds stratified by suite; on each fold the grid point with the best mean objective on
the other folds is scored on this fold), prints each fold's choice and held-out figures, then
scores the grid point chosen on all tuning questions on every suite, the ``--held-out`` ones
included (never used for choosing). ``--dataset DIR`` adds a BEIR/RAGAS folder laid out like the
shared suites, as an extra held-out set. Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import Settings
from evaluation import suites
from evaluation.correctness import answer_correctness
from evaluation.release import load_release
from evaluation.runner import open_namespace
from retrieval import factory
from retrieval.extractive import ExtractiveGenerator
from retrieval.service import checked
from retrieval.types import Passage
from stores.vectors import SearchFilter
from textmodels.embedding import Embedder, MemoEmbedder
from textmodels.models import make_embedder


@dataclass(frozen=True)
class Item:
    suite: str
    id: str
    question: str
    reference: str
    answerable: bool
    passages: list[Passage]


def cached_items(settings: Settings, release_ref: str, suite: suites.Suite) -> list[Item]:
    """Every question of the suite with the passages the release retrieves for it."""
    release = load_release(release_ref)
    key = hashlib.sha256(
        json.dumps([suite.id, release.config["ingestion"], release.config["retrieval"]]).encode()
    ).hexdigest()[:16]
    cache = settings.data_dir / "answers-cache" / f"{suite.name}-{key}.json"
    if cache.is_file():
        rows = json.loads(cache.read_text())
    else:
        started = time.perf_counter()
        ns = open_namespace(settings, release, suite, lambda stage, done, total: None)
        try:
            qa = factory.qa(ns.runtime)
            flt = SearchFilter(tenant_id=ns.tenant_id)
            rows = []
            for q in suite.questions:
                found = qa.search(q.question, flt).passages
                rows.append(
                    {
                        "id": q.id,
                        "question": q.question,
                        "reference": q.reference,
                        "answerable": q.answerable,
                        "passages": [
                            p.__dict__ | {"section_path": list(p.section_path)} for p in found
                        ],
                    }
                )
        finally:
            ns.runtime.close()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(rows, ensure_ascii=False))
        print(
            f"{suite.name}: searched {len(rows)} questions in {time.perf_counter() - started:.0f} s"
        )
    return [
        Item(
            suite.name,
            r["id"],
            r["question"],
            r["reference"],
            r["answerable"],
            [Passage(**{**p, "section_path": tuple(p["section_path"])}) for p in r["passages"]],
        )
        for r in rows
    ]


EMBEDDER: list[Embedder] = []  # the release's query embedder, memoised (set in main)
EVIDENCE: dict[Any, Any] = {}  # the answerer's evidence per question, shared by every setting


def outcome(gen: ExtractiveGenerator, it: Item) -> tuple[float, float]:
    """(correctness, grounded) of one question: correctness 0 when refused."""
    answer = checked(gen.generate(it.question, it.passages), it.passages, it.question)
    given = answer.text if answer.grounded else ""
    right = answer_correctness(given, it.reference).score if it.answerable and it.reference else 0.0
    return right, 1.0 if answer.grounded else 0.0


OUTCOMES: dict[tuple[str, tuple[Any, ...]], tuple[float, float]] = {}


def score(items: list[Item], params: dict[str, Any]) -> dict[str, float]:
    """Mean correctness over answerable questions (0 when refused), refusal share of
    unanswerable ones, answered share of answerable ones, and their objective. Each
    (question, setting) is answered once (memoised)."""
    gen = ExtractiveGenerator(**params, embedder=EMBEDDER[0] if EMBEDDER else None, memo=EVIDENCE)
    point = tuple(sorted(params.items()))
    correct: list[float] = []
    answered: list[float] = []
    refused: list[float] = []
    for it in items:
        key = (f"{it.suite}/{it.id}", point)
        if key not in OUTCOMES:
            OUTCOMES[key] = outcome(gen, it)
        right, grounded = OUTCOMES[key]
        if it.answerable:
            correct.append(right)
            answered.append(grounded)
        else:
            refused.append(1.0 - grounded)
    out = {
        "correctness": statistics.fmean(correct) if correct else 0.0,
        "answered": statistics.fmean(answered) if answered else 0.0,
        "refused": statistics.fmean(refused) if refused else float("nan"),
        "questions": float(len(items)),
        "unanswerable": float(len(refused)),
    }
    out["objective"] = objective(out)
    return out


def objective(m: dict[str, float]) -> float:
    """What tuning maximises: each question counts once, an answerable one by its correctness
    (0 when refused), an unanswerable one by whether it was refused."""
    if m["refused"] != m["refused"]:  # NaN: no unanswerable questions
        return m["correctness"]
    n_refusable = m["unanswerable"]
    n_answerable = m["questions"] - n_refusable
    return (m["correctness"] * n_answerable + m["refused"] * n_refusable) / m["questions"]


GRID: dict[str, list[Any]] = {
    "min_coverage": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
    "min_similarity": [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "meaning_weight": [0.0, 0.5, 1.0, 2.0, 4.0],
    "type_weight": [0.0, 0.3],
    "max_sentences": [2, 3],
}


def grid() -> list[dict[str, Any]]:
    keys = list(GRID)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*GRID.values())]


def mean_objective(items_by_suite: dict[str, list[Item]], params: dict[str, Any]) -> float:
    """Each suite counts once, whatever its size."""
    return statistics.fmean(score(items, params)["objective"] for items in items_by_suite.values())


def cross_validate(
    tuning: list[Item], k: int, seed: int = 0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rng = random.Random(seed)
    folds: list[list[Item]] = [[] for _ in range(k)]
    for name in sorted({it.suite for it in tuning}):
        members = [it for it in tuning if it.suite == name]
        rng.shuffle(members)
        for i, it in enumerate(members):
            folds[i % k].append(it)
    reports = []
    for i in range(k):
        train = [it for j, f in enumerate(folds) if j != i for it in f]
        by_suite = _by_suite(train)
        best = max(grid(), key=lambda p: mean_objective(by_suite, p))
        held = {s: score(v, best) for s, v in _by_suite(folds[i]).items()}
        reports.append({"fold": i, "chosen": best, "held_out": held})
    chosen = max(grid(), key=lambda p: mean_objective(_by_suite(tuning), p))
    return reports, chosen


def _by_suite(items: list[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {}
    for it in items:
        out.setdefault(it.suite, []).append(it)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", action="append", default=[], help="Tuning suites (repeatable).")
    parser.add_argument("--held-out", action="append", default=[], help="Suites never tuned on.")
    parser.add_argument(
        "--dataset",
        type=Path,
        action="append",
        default=[],
        help="Extra held-out BEIR/RAGAS folder (shared-suite layout).",
    )
    parser.add_argument("--release", default="default")
    parser.add_argument("--data-dir", type=Path, default=Path("var/bench-answers"))
    parser.add_argument(
        "--cv", type=int, default=0, help="Folds (0: score the current defaults only)."
    )
    args = parser.parse_args()
    tuning_names = args.suite or ["fr_service_public_qa", "squad_v2_dev_subset"]
    settings = Settings(data_dir=args.data_dir)
    loaded = {name: suites.load_suite(name) for name in [*tuning_names, *args.held_out]}
    for folder in args.dataset:
        base = suites.descriptor(tuning_names[0])
        loaded[folder.name] = suites.load_from(base, folder.resolve())
    items = {name: cached_items(settings, args.release, s) for name, s in loaded.items()}
    release_settings = load_release(args.release).settings(settings)
    memo = MemoEmbedder(make_embedder(release_settings))
    # Sentence vectors depend on the model alone: kept across runs.
    store = settings.data_dir / "answers-cache" / f"vectors-{memo.model_id.replace('/', '_')}.pkl"
    if store.is_file():
        memo.memo.update(pickle.loads(store.read_bytes()))
    EMBEDDER.append(memo)
    tuning = [it for name in tuning_names for it in items[name]]
    result: dict[str, Any] = {"bench": "answers", "release": args.release, "tuning": tuning_names}
    if args.cv:
        folds, chosen = cross_validate(tuning, args.cv)
        for f in folds:
            held = ", ".join(f"{s}: {m['correctness']:.3f}" for s, m in f["held_out"].items())
            print(f"fold {f['fold']}: chose {f['chosen']} -> held-out correctness {held}")
        result["cv"] = {"folds": folds, "chosen": chosen}
        params = chosen
    else:
        g = release_settings.generation
        params = {k: getattr(g, k) for k in GRID if hasattr(g, k)}
    print(f"answerer settings: {params or 'defaults'}")
    result["params"] = params
    result["suites"] = {}
    for name, its in items.items():
        m = score(its, params)
        tag = "held out" if name not in tuning_names else "tuning"
        print(
            f"{name:<24} ({tag:>8}) questions {len(its):>4}  correctness {m['correctness']:.3f}  "
            f"answered {m['answered']:.3f}  refused {m['refused']:.3f}"
        )
        result["suites"][name] = {k: round(v, 4) for k, v in m.items()} | {"role": tag}
    store.write_bytes(pickle.dumps(memo.memo))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
