"""Sorting benchmark: document types and fields, learned from a user's labels (issue #17).

    .venv/bin/python bench/sorting.py [--dataset DIR] [--squad DIR|none] [--data-dir DIR]

``--dataset`` is a folder laid out as ``ged_docs`` (``manifest.jsonl`` with ``file``,
``variant``, ``doc_type``, ``language``, ``template`` and true ``fields``). Every file is
ingested through the real API path (upload, embedded worker: parse, chunk, embed, index, then
sort), with a vocabulary of the data set's types (names and generic bilingual descriptions, as
a user would write them). Then, as a user would through the API, N documents per type are
labelled (``POST /v1/sorting/documents/{id}/correct``), N = 0, 3, 10 in turn (each set holds
the previous one; seed 0), and every other document is sorted again
(``POST /v1/sorting/documents/{id}/sort``): type accuracy and macro-F1 on "the rest" and on the
documents no N labels (the same set for every N), born-digital and scanned apart, per language
and on the held-apart templates (``*_t3``: nothing was tuned on them). Fields (exact match after
normalisation: amounts to the cent, names without honorifics and case) are scored on the final
sort, per field. Seconds per document: the sorting step as ingestion runs it (its Prometheus
stage), and again for each re-sort. Files the parser cannot read yet (scans, until OCR lands)
are reported as pending OCR, and scored automatically once they yield text.

``--squad``: the SQuAD paragraphs with their article title as the type (16 topics), names only.

Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

for _name, _value in (
    ("DO_NOT_TRACK", "1"),
    ("SCARF_NO_ANALYTICS", "true"),
    ("UNSTRUCTURED_DISABLE_NOTICE", "1"),
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
):
    os.environ.setdefault(_name, _value)

import yaml  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from core.metrics import INGEST_STAGE  # noqa: E402
from core.settings import Settings  # noqa: E402
from evaluation.sorting_eval import classification, field_value, normalised  # noqa: E402
from serving.app import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = ROOT.parent / "shared" / "datasets" / "ged_docs"
DEFAULT_SQUAD = ROOT.parent / "shared" / "datasets" / "squad_v2_dev_subset"
SHOTS = (0, 3, 10)

# What a user would write: a name in both languages and what the type is, nothing taken from
# the data set's templates (written before any figure was looked at); the ged_docs suite's
# descriptor holds them, so the benchmark and `gedrag eval run --suite ged_docs` sort alike.
GED_TYPES = {
    key: (entry["name"], entry.get("description", ""))
    for key, entry in yaml.safe_load(
        (ROOT / "evaluation" / "suites" / "ged_docs.yaml").read_text(encoding="utf-8")
    )["vocabulary"].items()
}
FIELDS = (
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
    "issuer.siret",
    "issuer.vat",
    "recipient.siret",
    "recipient.vat",
)
# The field set ("dates, issuer, recipient, reference numbers, totals, IBAN, period");
# identifiers are reported beside it.
KEY_FIELDS = FIELDS[:10]


class Bench:
    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=data_dir)
        self.client = TestClient(create_app(self.settings))
        self.client.__enter__()
        self.rt = self.client.app.state.runtime  # type: ignore[attr-defined]
        self.sorting = self.client.app.state.service.ingestion.sorting  # type: ignore[attr-defined]

    def close(self) -> None:
        self.client.__exit__(None, None, None)

    def tenant(self, name: str) -> tuple[str, dict[str, str]]:
        catalog = self.rt.catalog
        try:
            tenant = catalog.tenants.get(name)
        except Exception:
            tenant = catalog.tenants.create(name)
        key, _ = catalog.tenants.create_key(name, f"bench-{int(time.time())}")
        return tenant.id, {"Authorization": f"Bearer {key}"}

    def vocabulary(self, auth: dict[str, str], types: dict[str, tuple[str, str]]) -> None:
        for key, (name, description) in types.items():
            entry = {"kind": "type", "key": key, "name": name, "description": description}
            r = self.client.post("/v1/sorting/vocabulary", headers=auth, json=entry)
            assert r.status_code in (200, 201), r.text
        # Measure predictions, not filing: nothing reaches the threshold of 1 but rules.
        r = self.client.patch("/v1/sorting/settings", headers=auth, json={"threshold": 1.0})
        assert r.status_code == 200, r.text

    def reset_labels(self, tenant_id: str) -> None:
        """A data dir reused from an earlier run: its labels go (the benchmark gives its own)."""
        self.rt.catalog.sorting.clear_labels(tenant_id)

    def upload(
        self, auth: dict[str, str], files: list[tuple[str, str, bytes]]
    ) -> dict[str, dict[str, Any]]:
        """``(item id, file name, bytes)`` in batches; waits for every job; id → outcome."""
        out: dict[str, dict[str, Any]] = {}
        jobs: dict[str, str] = {}
        for start in range(0, len(files), 50):
            batch = files[start : start + 50]
            r = self.client.post(
                "/v1/documents/batch",
                headers=auth,
                files=[("files", (name, data)) for _, name, data in batch],
                data={"collection": "inbox"},
            )
            if r.status_code == 415:  # a file the API refuses (an image, before OCR): one by one
                results = []
                for item_id, name, data in batch:
                    one = self.client.post(
                        "/v1/documents",
                        headers=auth,
                        files={"file": (name, data)},
                        data={"collection": "inbox"},
                    )
                    if one.status_code == 415:
                        out[item_id] = {"document_id": None, "error": one.json()["detail"]}
                        continue
                    one.raise_for_status()
                    results.append((item_id, one.json()))
            else:
                r.raise_for_status()
                results = [
                    (item_id, item)
                    for (item_id, _, _), item in zip(batch, r.json()["items"], strict=True)
                ]
            for item_id, item in results:
                out[item_id] = {"document_id": item["document_id"], "error": None}
                if item["job_id"]:
                    jobs[item["job_id"]] = item_id
        done = 0
        while jobs:
            for job_id, item_id in list(jobs.items()):
                job = self.client.get(f"/v1/jobs/{job_id}", headers=auth).json()
                if job["state"] in ("succeeded", "failed"):
                    del jobs[job_id]
                    done += 1
                    if job["state"] == "failed":
                        out[item_id]["error"] = job["error"]
            print(f"\r  indexed {len(out) - len(jobs)}/{len(out)}", end="", flush=True)
            time.sleep(1)
        print()
        # A document failed earlier (a duplicate upload has no job): read its state.
        for _item_id, o in out.items():
            if o["document_id"] is None:
                continue
            doc = self.client.get(f"/v1/documents/{o['document_id']}", headers=auth).json()
            if doc["status"] == "failed":
                o["error"] = doc.get("error") or "failed"
        return out

    def label(self, auth: dict[str, str], doc_id: str, doc_type: str) -> None:
        r = self.client.post(
            f"/v1/sorting/documents/{doc_id}/correct",
            headers=auth,
            json={"document_type": doc_type},
        )
        assert r.status_code == 200, r.text

    def resort(self, auth: dict[str, str], doc_id: str) -> tuple[dict[str, Any], float]:
        t0 = time.perf_counter()
        r = self.client.post(f"/v1/sorting/documents/{doc_id}/sort", headers=auth)
        elapsed = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        return r.json(), elapsed


# -- metrics -------------------------------------------------------------------------------


def coverage_at(rows: list[tuple[str, str | None, float]], threshold: float) -> dict[str, Any]:
    """Share of documents at or above the threshold (applied automatically) and their
    precision."""
    above = [(t, p) for t, p, c in rows if c >= threshold]
    return {
        "threshold": threshold,
        "coverage": round(len(above) / len(rows), 4) if rows else None,
        "precision": round(sum(1 for t, p in above if t == p) / len(above), 4) if above else None,
    }


def field_scores(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Exact match per field over the documents whose truth holds it, and ``key_fields``: the
    same over the issue's fields together; ``false_positives``: values given where the truth
    has none."""
    per: dict[str, list[int]] = defaultdict(list)
    false_pos: Counter[str] = Counter()
    for truth, got in pairs:
        for key in FIELDS:
            t, g = field_value(truth, key), field_value(got, key)
            if t is None:
                false_pos[key] += g is not None
                continue
            per[key].append(int(normalised(t) == normalised(g)))
    key_hits = [h for k in KEY_FIELDS for h in per.get(k, [])]
    return {
        "documents": len(pairs),
        "key_fields": round(sum(key_hits) / len(key_hits), 4) if key_hits else None,
        "per_field": {k: round(sum(v) / len(v), 4) for k, v in per.items() if v},
        "counts": {k: len(v) for k, v in per.items()},
        "false_positives": dict(false_pos),
    }


# -- ged_docs ------------------------------------------------------------------------------


def run_ged(bench: Bench, dataset: Path, shots: tuple[int, ...], seed: int) -> dict[str, Any]:
    manifest = [json.loads(x) for x in (dataset / "manifest.jsonl").read_text().splitlines()]
    types = {k: v for k, v in GED_TYPES.items() if k in {r["doc_type"] for r in manifest}}
    extra = sorted({r["doc_type"] for r in manifest} - set(types))
    types.update({k: (k.replace("_", " ").title(), "") for k in extra})
    tenant_id, auth = bench.tenant("bench-ged")
    bench.vocabulary(auth, types)
    bench.reset_labels(tenant_id)
    stage = INGEST_STAGE.labels("sort")
    before_sum, before_n = _histogram(stage)
    t0 = time.perf_counter()
    outcome = bench.upload(
        auth,
        [(r["id"], Path(r["file"]).name, (dataset / r["file"]).read_bytes()) for r in manifest],
    )
    ingest_s = time.perf_counter() - t0
    sort_sum, sort_n = _histogram(stage)
    in_pipeline = (sort_sum - before_sum) / (sort_n - before_n) if sort_n > before_n else None
    readable = {r["id"]: r for r in manifest if outcome[r["id"]]["error"] is None}
    pending = Counter(r["variant"] for r in manifest if outcome[r["id"]]["error"] is not None)
    causes = Counter(
        outcome[r["id"]]["error"].split(";")[0][:80]
        for r in manifest
        if outcome[r["id"]]["error"] is not None
    )
    print(
        f"ingested {len(readable)}/{len(manifest)} files in {ingest_s:.0f} s; unreadable: "
        f"{dict(pending)} ({dict(causes)})"
    )
    rng = random.Random(seed)
    by_type: dict[str, list[str]] = defaultdict(list)
    for r in manifest:
        if r["variant"] == "born_digital" and r["id"] in readable:
            by_type[r["doc_type"]].append(r["id"])
    order = {t: rng.sample(ids, len(ids)) for t, ids in sorted(by_type.items())}
    most = max(shots)
    never_labelled = {
        i for i in readable if i not in {x for ids in order.values() for x in ids[:most]}
    }
    # A scan reproduces a born-digital document: labelling its source labels it too, in effect.
    never_labelled = {
        i
        for i in never_labelled
        if readable[i]["source_id"] not in {x for ids in order.values() for x in ids[:most]}
    }
    results: dict[str, Any] = {}
    labelled: set[str] = set()
    timings: list[float] = []
    for n in sorted(shots):
        for t, ids in order.items():
            for item in ids[:n]:
                if item not in labelled:
                    bench.label(auth, outcome[item]["document_id"], t)
                    labelled.add(item)
        rows: dict[str, tuple[str, str | None, float]] = {}
        for item, r in readable.items():
            if item in labelled:
                continue
            d, elapsed = bench.resort(auth, outcome[item]["document_id"])
            timings.append(elapsed)
            rows[item] = (r["doc_type"], d["suggested_type"], d["confidence"] or 0.0)
        results[f"N={n}"] = _scores(rows, readable, never_labelled)
        _print_scores(n, results[f"N={n}"])
    final = {
        item: bench.client.get(
            f"/v1/sorting/documents/{outcome[item]['document_id']}", headers=auth
        ).json()
        for item in readable
    }
    fields = {
        variant: field_scores(
            [(r["fields"], final[i]["fields"]) for i, r in readable.items() if r["variant"] in vs]
        )
        for variant, vs in (("born_digital", ("born_digital",)), ("scan", ("scan", "photo")))
    }
    fields["born_digital_t3"] = field_scores(
        [
            (r["fields"], final[i]["fields"])
            for i, r in readable.items()
            if r["variant"] == "born_digital" and r["template"].endswith("t3")
        ]
    )
    fields["born_digital_t1_t2"] = field_scores(
        [
            (r["fields"], final[i]["fields"])
            for i, r in readable.items()
            if r["variant"] == "born_digital" and not r["template"].endswith("t3")
        ]
    )
    print("fields (exact match):")
    for name, f in fields.items():
        print(f"  {name:20s} key fields {f['key_fields']} over {f['documents']} documents")
        for k, v in f["per_field"].items():
            print(f"      {k:16s} {v:.3f} ({f['counts'][k]})")
    seconds = {
        "sort_in_ingestion_mean_s": round(in_pipeline, 4) if in_pipeline is not None else None,
        "resort_p50_s": round(statistics.median(timings), 4) if timings else None,
        "resort_mean_s": round(statistics.fmean(timings), 4) if timings else None,
        "ingest_s": round(ingest_s, 1),
        "documents": len(manifest),
    }
    print(f"seconds per document: {seconds}")
    return {
        "files": len(manifest),
        "readable": len(readable),
        "pending_ocr": dict(pending),
        "unreadable_causes": dict(causes),
        "types": results,
        "fields": fields,
        "seconds": seconds,
    }


def _histogram(metric: Any) -> tuple[float, float]:
    total = count = 0.0
    for sample in metric.collect()[0].samples:
        if sample.name.endswith("_sum"):
            total = sample.value
        elif sample.name.endswith("_count"):
            count = sample.value
    return total, count


def _scores(
    rows: dict[str, tuple[str, str | None, float]],
    readable: dict[str, dict[str, Any]],
    common: set[str],
) -> dict[str, Any]:
    def pick(cond: Any) -> list[tuple[str, str | None]]:
        return [(t, p) for i, (t, p, _) in rows.items() if cond(readable[i], i)]

    confident = [rows[i] for i in rows]
    return {
        "rest": classification(pick(lambda r, i: True)),
        "born_digital": classification(pick(lambda r, i: r["variant"] == "born_digital")),
        "scan": classification(pick(lambda r, i: r["variant"] != "born_digital")),
        "common_held_out": classification(pick(lambda r, i: i in common)),
        "english": classification(pick(lambda r, i: r["language"] == "en")),
        "french": classification(pick(lambda r, i: r["language"] == "fr")),
        "templates_t3": classification(pick(lambda r, i: r["template"].endswith("t3"))),
        "templates_t1_t2": classification(pick(lambda r, i: not r["template"].endswith("t3"))),
        "auto_apply": [coverage_at(confident, t) for t in (0.5, 0.7, 0.9)],
    }


def _print_scores(n: int, s: dict[str, Any]) -> None:
    print(f"N={n} labelled per type:")
    for name in (
        "rest",
        "born_digital",
        "scan",
        "common_held_out",
        "french",
        "english",
        "templates_t1_t2",
        "templates_t3",
    ):
        c = s[name]
        print(f"  {name:16s} n={c['n']:4d} accuracy {c['accuracy']} macro-F1 {c['macro_f1']}")
    for a in s["auto_apply"]:
        print(
            f"  at confidence >= {a['threshold']}: {a['coverage']} of documents, "
            f"precision {a['precision']}"
        )


# -- SQuAD: article titles as types ---------------------------------------------------------


def run_squad(
    bench: Bench, dataset: Path, shots: tuple[int, ...], seed: int, limit: int | None
) -> dict[str, Any]:
    corpus = [json.loads(x) for x in (dataset / "corpus.jsonl").read_text().splitlines()]
    if limit:
        rng = random.Random(seed)
        corpus = rng.sample(corpus, min(limit, len(corpus)))
    titles = sorted({d["title"] for d in corpus})
    keys = {t: "t_" + "".join(c if c.isalnum() else "_" for c in t.lower()) for t in titles}
    tenant_id, auth = bench.tenant("bench-squad")
    bench.vocabulary(auth, {keys[t]: (t, "") for t in titles})
    bench.reset_labels(tenant_id)
    t0 = time.perf_counter()
    # The paragraph alone: its title is the label, so it is not in the file.
    outcome = bench.upload(
        auth, [(d["_id"], f"{d['_id']}.txt", d["text"].encode()) for d in corpus]
    )
    ingest_s = time.perf_counter() - t0
    readable = {d["_id"]: d for d in corpus if outcome[d["_id"]]["error"] is None}
    rng = random.Random(seed)
    by_type: dict[str, list[str]] = defaultdict(list)
    for i, d in readable.items():
        by_type[keys[d["title"]]].append(i)
    order = {t: rng.sample(ids, len(ids)) for t, ids in sorted(by_type.items())}
    most = max(shots)
    common = {i for i in readable if i not in {x for ids in order.values() for x in ids[:most]}}
    results: dict[str, Any] = {}
    labelled: set[str] = set()
    for n in sorted(shots):
        for t, ids in order.items():
            for item in ids[:n]:
                if item not in labelled:
                    bench.label(auth, outcome[item]["document_id"], t)
                    labelled.add(item)
        pairs, held = [], []
        for item, d in readable.items():
            if item in labelled:
                continue
            got, _ = bench.resort(auth, outcome[item]["document_id"])
            pair = (keys[d["title"]], got["suggested_type"])
            pairs.append(pair)
            if item in common:
                held.append(pair)
        results[f"N={n}"] = {"rest": classification(pairs), "common_held_out": classification(held)}
        print(
            f"SQuAD N={n}: rest {results[f'N={n}']['rest']} held out "
            f"{results[f'N={n}']['common_held_out']}"
        )
    return {
        "documents": len(readable),
        "topics": len(titles),
        "ingest_s": round(ingest_s, 1),
        "types": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument(
        "--squad", default=str(DEFAULT_SQUAD), help="SQuAD subset folder, or 'none' to skip"
    )
    parser.add_argument("--squad-limit", type=int, default=None, help="Paragraphs sampled.")
    parser.add_argument("--data-dir", type=Path, default=None, help="Keep / reuse the stores.")
    parser.add_argument("--shots", default=",".join(map(str, SHOTS)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-ged", action="store_true")
    args = parser.parse_args()
    shots = tuple(int(x) for x in args.shots.split(","))
    if not (args.dataset / "manifest.jsonl").is_file() and not args.skip_ged:
        sys.exit(f"no manifest.jsonl in {args.dataset}")
    holder = None if args.data_dir else tempfile.TemporaryDirectory(prefix="gedrag-sorting-")
    data_dir = args.data_dir or Path(holder.name)  # type: ignore[union-attr]
    bench = Bench(data_dir)
    out: dict[str, Any] = {"bench": "sorting", "shots": list(shots), "seed": args.seed}
    try:
        if not args.skip_ged:
            out["ged_docs"] = run_ged(bench, args.dataset, shots, args.seed)
        squad = Path(args.squad)
        if args.squad != "none" and (squad / "corpus.jsonl").is_file():
            out["squad"] = run_squad(bench, squad, shots, args.seed, args.squad_limit)
    finally:
        bench.close()
        if holder is not None:
            holder.cleanup()
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
