"""Rated production answers become the next release's test set.

``gedrag eval suite from-feedback`` exports the rated traces (``GET /v1/traces/export``) and
writes a suite that ``gedrag eval run`` loads (layout ``feedback`` in
:mod:`evaluation.suites`): for each question, the answer people accepted (thumbs up) or the
one they wrote instead (a correction), the passages that support it as reference contexts
(by chunk id: its relevant ids), and every passage the answer was chosen from as the corpus.
A suite's id is the hash of its content: each export is a version of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

_WORD = re.compile(r"\w{4,}")
# A corrected answer names no passage: those holding at least half of its words support it.
SUPPORT_SHARE = 0.5


def suite_rows(traces: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Suite rows from traces as the API exports them (newest first): one per question (the
    newest rating wins), for answers rated up (the answer is the reference; a refusal rated up
    makes an unanswerable question) or corrected (the correction is)."""
    rows: dict[str, dict[str, Any]] = {}
    for t in traces:
        fb, answer = t.get("feedback"), t.get("answer")
        if t.get("arm") == "shadow" or fb is None or answer is None or not t.get("passages"):
            continue
        corrected = (fb.get("corrected_answer") or "").strip()
        if fb["rating"] == "down" and not corrected:
            continue  # wrong, but nobody said what is right
        question = t.get("standalone_question") or t["question"]
        key = " ".join(question.casefold().split())
        if key in rows:
            continue
        passages = t["passages"]
        if corrected:
            reference = corrected
            support = _supporting(passages, corrected)
        else:
            reference = answer["text"] if answer["grounded"] else ""
            cited = {c["n"] for c in answer["citations"]}
            support = [p for p in passages if p["n"] in cited] if reference else []
        rows[key] = {
            "id": t["id"],
            "question": question,
            "ground_truth": reference,
            "reference_contexts": [p["text"] for p in support],
            "relevant_ids": [p["chunk_id"] for p in support],
            "is_impossible": not reference,
            "passages": [
                {"_id": p["chunk_id"], "title": p["title"], "text": p["text"]} for p in passages
            ],
            "rating": fb["rating"],
            "corrected": bool(corrected),
            "release_id": t.get("release_id"),
            "asked_at": t.get("created_at"),
        }
    return list(rows.values())


def _supporting(passages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    words = {w.casefold() for w in _WORD.findall(text)}
    if not words:
        return []
    return [
        p
        for p in passages
        if len(words & {w.casefold() for w in _WORD.findall(p["text"])}) / len(words)
        >= SUPPORT_SHARE
    ]


def write_suite(rows: list[dict[str, Any]], folder: Path, name: str) -> Path:
    """The suite's data and descriptor in ``folder``; returns the descriptor's path (what
    ``gedrag eval run --suite`` takes)."""
    if not rows:
        raise ValueError("no rated answer to make a suite from")
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "feedback.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    corrected = sum(r["corrected"] for r in rows)
    made = datetime.now(UTC).isoformat(timespec="seconds")
    descriptor = {
        "name": name,
        "description": f"{len(rows)} rated production answers ({corrected} corrected), {made}",
        "format": "feedback",
        "path": ".",
        "questions": "feedback.jsonl",
        "licence": "the tenant's own documents",
    }
    path = folder / "suite.yaml"
    path.write_text(
        "# Made by `gedrag eval suite from-feedback` from answers rated in production.\n"
        + yaml.safe_dump(descriptor, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return path
