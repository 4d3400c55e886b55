"""OCR benchmark: every scan and photo of a ged_docs-style manifest through ``ingestion.ocr``.

    nice -n 10 .venv/bin/python bench/ocr.py [--dataset ../shared/datasets/ged_docs] [--limit N]
        [--split all|dev|heldout] [--workers 1] [--languages fra+eng|manifest] [--baseline]
        [--details per_file.jsonl]

Reads ``manifest.jsonl`` (entries whose ``variant`` is ``scan`` or ``photo``: image-only PDF,
multi-page TIFF, PNG, JPEG), OCRs each file (``ocr_pdf_pages`` for PDFs, ``ocr_images`` for
images) and compares every page with the manifest's ``text``. Prints CER and WER (mean and
median over files) overall, per split, per variant, per degradation and per encoding, pages/s,
CPU seconds per page and seconds per stage, then one JSON line. Exits 0 with a ``skipped`` JSON
line when the dataset is absent.

CER of a file = Levenshtein distance / reference length, both summed over the file's pages, after
Unicode NFC and collapsing every whitespace run (spaces, newlines, U+00A0, U+202F) to one space;
case, accents and punctuation are kept. WER is the same over whitespace-separated words. This is
the ged_docs README's definition, so figures compare with its baseline.

``--split dev`` keeps documents whose source id is odd (the half the pipeline was tuned on),
``heldout`` the even ones. ``--languages manifest`` uses each file's language (``fra``/``eng``)
instead of the default ``fra+eng``. ``--baseline`` runs plain Tesseract instead (default page
segmentation, native resolution, no preprocessing, manifest language): the issue's baseline.
``--workers N`` runs N files at once in N processes (Tesseract itself is single-threaded).

Measured 2026-12-07 on this 2-core machine (Tesseract 5.3.0; the machine was shared, load
average 16-24, so wall-clock rates here are not the machine's), ``--workers 1``, fra+eng:

    120 files / 143 pages   CER mean 1.82 % median 0.44 %   WER mean 4.77 % median 1.82 %
    dev (odd, tuned on)     CER mean 1.83 % median 0.41 %   WER mean 5.18 % median 2.32 %
    held-out (even)         CER mean 1.80 % median 0.46 %   WER mean 4.35 % median 1.45 %
    photos (10)             CER mean 1.61 % median 0.81 %
    --baseline, all         CER mean 8.21 % median 1.82 %   WER mean 12.41 % median 5.47 %
    CPU per page: 1.69 s (baseline 0.87 s); paired on 18 pages: 1.62 s vs 0.95 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import unicodedata
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rapidfuzz.distance import Levenshtein

from core.errors import IngestionError
from ingestion import ocr

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ged_docs"
LANG = {"fr": "fra", "en": "eng"}
_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def plain_tesseract(path: Path, entry: dict[str, Any]) -> list[str]:
    """The issue's baseline: ``tesseract -l fra|eng``, default psm, pages at native size."""
    import pypdfium2 as pdfium
    from PIL import Image

    binary = ocr.tesseract_binary()
    images: list[Image.Image] = []
    if entry["format"] == "pdf":
        pdf = pdfium.PdfDocument(path)
        for page in pdf:
            images.append(page.render(scale=(entry["dpi"] or 300) / 72, grayscale=True).to_pil())
    else:
        images = ocr.load_images(path.read_bytes())
    texts = []
    for image in images:
        buf = io.BytesIO()
        image.convert("L").save(buf, format="PNG")
        done = subprocess.run(
            [binary, "stdin", "stdout", "-l", LANG[entry["language"]]],
            input=buf.getvalue(),
            capture_output=True,
            timeout=300,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            check=False,
        )
        texts.append(done.stdout.decode("utf-8", "replace"))
    return texts


def read_file(args: tuple[str, dict[str, Any], str, bool]) -> dict[str, Any]:
    """OCR one manifest entry and score it (runs in a worker process)."""
    root, entry, languages, baseline = args
    path = Path(root) / entry["file"]
    lang = LANG[entry["language"]] if languages == "manifest" else languages
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    stages: dict[str, float] = defaultdict(float)
    confidences: list[float] = []
    error = None
    try:
        if baseline:
            texts = plain_tesseract(path, entry)
        else:
            data = path.read_bytes()
            if entry["format"] == "pdf":
                pages = ocr.ocr_pdf_pages(data, range(1, entry["pages"] + 1), languages=lang)
            else:
                pages = ocr.ocr_images(data, lang)
            texts = [p.text for p in pages]
            for p in pages:
                confidences.append(p.confidence)
                for k, v in p.timings.items():
                    stages[k] += v
    except IngestionError as exc:
        texts, error = [""] * entry["pages"], exc.detail
    dist = ref_len = wdist = wref = 0
    for hyp, ref in zip(texts, entry["text"], strict=False):
        h, r = normalise(hyp), normalise(ref)
        dist += Levenshtein.distance(h, r)
        ref_len += len(r)
        wdist += Levenshtein.distance(h.split(), r.split())
        wref += len(r.split())
    return {
        "id": entry["id"],
        "variant": entry["variant"],
        "encoding": entry["encoding"],
        "dev": int(entry["source_id"].split("-")[1]) % 2 == 1,
        "degradations": sorted({d.split(":")[0] for d in entry["degradations"]}),
        "pages": entry["pages"],
        "cer": dist / max(1, ref_len),
        "wer": wdist / max(1, wref),
        "confidence": confidences,
        "cpu": cpu_seconds() - cpu0,
        "wall": time.perf_counter() - wall0,
        "stages": dict(stages),
        "error": error,
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cer = [r["cer"] for r in rows]
    wer = [r["wer"] for r in rows]
    return {
        "files": len(rows),
        "pages": sum(r["pages"] for r in rows),
        "cer_mean": round(100 * statistics.mean(cer), 2),
        "cer_median": round(100 * statistics.median(cer), 2),
        "wer_mean": round(100 * statistics.mean(wer), 2),
        "wer_median": round(100 * statistics.median(wer), 2),
    }


def line(label: str, s: dict[str, Any]) -> str:
    return (
        f"{label:<28} {s['files']:>4} files {s['pages']:>4} pages  "
        f"CER mean {s['cer_mean']:6.2f} % median {s['cer_median']:5.2f} %  "
        f"WER mean {s['wer_mean']:6.2f} % median {s['wer_median']:5.2f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--limit", type=int, default=None, help="files (default: all)")
    parser.add_argument("--split", choices=["all", "dev", "heldout"], default="all")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--languages", default=ocr.DEFAULT_LANGUAGES)
    parser.add_argument("--baseline", action="store_true", help="plain Tesseract, no pipeline")
    parser.add_argument("--details", type=Path, help="write one JSON line per file here")
    args = parser.parse_args()
    manifest = args.dataset / "manifest.jsonl"
    if not manifest.is_file():
        reason = f"dataset not found: {manifest}"
        print(reason, file=sys.stderr)
        print(json.dumps({"bench": "ocr", "skipped": reason}))
        return
    try:
        ocr.tesseract_binary()
    except IngestionError as exc:
        print(exc.detail, file=sys.stderr)
        print(json.dumps({"bench": "ocr", "skipped": exc.detail}))
        return
    entries = [json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines() if x]
    entries = [e for e in entries if e["variant"] in ("scan", "photo")]
    if args.split != "all":
        odd = args.split == "dev"
        entries = [e for e in entries if (int(e["source_id"].split("-")[1]) % 2 == 1) == odd]
    entries = entries[: args.limit] if args.limit else entries
    jobs = [(str(args.dataset), e, args.languages, args.baseline) for e in entries]

    start = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(read_file, jobs))
    else:
        rows = [read_file(j) for j in jobs]
    wall = time.perf_counter() - start

    if args.details:
        args.details.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pages = sum(r["pages"] for r in rows)
    cpu = sum(r["cpu"] for r in rows)
    stages: dict[str, float] = defaultdict(float)
    for r in rows:
        for k, v in r["stages"].items():
            stages[k] += v
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[f"split {'dev (odd)' if r['dev'] else 'heldout (even)'}"].append(r)
        groups[f"variant {r['variant']}"].append(r)
        groups[f"encoding {r['encoding']}"].append(r)
        for d in r["degradations"]:
            groups[f"degradation {d}"].append(r)
    overall = summary(rows)
    by_group = {k: summary(v) for k, v in sorted(groups.items())}
    failed = [r for r in rows if r["error"]]

    mode = "plain tesseract (baseline)" if args.baseline else "ingestion.ocr"
    languages = "manifest" if args.baseline else args.languages
    print(f"{mode}, languages {languages}, {args.workers} worker(s), {args.dataset}")
    print(line("all", overall))
    for k, s in by_group.items():
        print(line(k, s))
    print(
        f"{pages} pages in {wall:.1f} s wall = {pages / wall:.2f} pages/s; "
        f"{cpu / pages:.2f} CPU s/page (Tesseract + Python)"
    )
    if stages:
        print("stage seconds:", {k: round(v, 1) for k, v in sorted(stages.items())})
    print("failed:", [(r["id"], r["error"]) for r in failed])
    worst = sorted(rows, key=lambda r: -r["cer"])[:8]
    print("worst:", [(r["id"], round(100 * r["cer"], 1), r["degradations"]) for r in worst])
    result = {
        "bench": "ocr",
        "mode": "baseline" if args.baseline else "pipeline",
        "languages": "manifest" if args.baseline else args.languages,
        "split": args.split,
        "workers": args.workers,
        **overall,
        "failed": len(failed),
        "dev": by_group.get("split dev (odd)"),
        "heldout": by_group.get("split heldout (even)"),
        "by_variant": {k[8:]: v for k, v in by_group.items() if k.startswith("variant ")},
        "seconds": round(wall, 1),
        "pages_per_s": round(pages / wall, 3),
        "cpu_s_per_page": round(cpu / pages, 3),
        "stage_seconds": {k: round(v, 1) for k, v in sorted(stages.items())},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
