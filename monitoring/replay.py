"""A trace's question asked again under the same release, and what differs.

A trace names what its answer depended on (``data["replay"]``): the release and the hash of
the query-time configuration that answered, the vector collection (and the physical one behind
its alias), the embedding model, the code version, and each passage's document version. A
replay runs the trace's question, filter, history and ``top_k`` through the release's stack and
says which of those inputs changed since, and what changed in the passages and the answer.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from typing import Any

from core import ids
from monitoring.traces import Environment, config_sha, search_filter
from retrieval.service import QA
from retrieval.types import Message
from stores.catalog.traces import TraceRecord

# Score changes below this are rounding, not a different ranking.
SCORE_EPSILON = 1e-4


def replay(
    trace: TraceRecord,
    qa: QA,
    env: Environment,
    active_versions: Callable[[str, list[str]], dict[str, str]],
) -> dict[str, Any]:
    """Ask the trace's question again with ``qa`` (the release the trace names) and compare.
    ``active_versions(tenant, document ids)``: each document's active version id now."""
    d = trace.data
    flt = search_filter(d.get("filter") or {"tenant_id": trace.tenant_id})
    if flt.tenant_id != trace.tenant_id:
        raise ValueError("a trace's filter names another tenant")
    history = [Message(role=m["role"], content=m["content"]) for m in d.get("history", [])]
    top_k = d.get("top_k")
    started = time.perf_counter()
    answer_now: dict[str, Any] | None = None
    if trace.route == "search":
        found = qa.search(d.get("standalone_question") or trace.question, flt, top_k)
    else:
        reply = qa.ask(trace.question, flt, top_k=top_k, history=history)
        found = reply.search
        answer_now = {
            "text": reply.answer.text,
            "grounded": reply.answer.grounded,
            "citations": [c.n for c in reply.answer.citations],
        }
    latency = round((time.perf_counter() - started) * 1000, 2)
    then = d.get("passages", [])
    now = [
        {
            "chunk_id": p.chunk_id,
            "document_id": p.document_id,
            "version": p.version,
            "score": p.score,
            "title": p.title,
        }
        for p in found.passages
    ]
    out: dict[str, Any] = {
        "trace_id": trace.id,
        "release_id": trace.release_id,
        "inputs": inputs_changed(trace, qa, env, active_versions),
        "passages": passages_diff(then, now),
        "latency_ms": {"then": trace.latency_ms, "now": latency},
    }
    if answer_now is not None:
        was = d.get("answer", {})
        out["answer"] = {
            "same": was.get("text") == answer_now["text"],
            "then": was.get("text"),
            "now": answer_now["text"],
            "refused": {"then": trace.refused, "now": not answer_now["grounded"]},
            "citations": {
                "then": [c["n"] for c in was.get("citations", [])],
                "now": answer_now["citations"],
            },
            "diff": list(
                difflib.unified_diff(
                    _lines(was.get("text", "")),
                    _lines(answer_now["text"]),
                    "then",
                    "now",
                    lineterm="",
                )
            ),
        }
    out["same"] = not out["passages"]["changed"] and out.get("answer", {}).get("same", True)
    return out


def inputs_changed(
    trace: TraceRecord,
    qa: QA,
    env: Environment,
    active_versions: Callable[[str, list[str]], dict[str, str]],
) -> list[dict[str, Any]]:
    """Each input the trace recorded whose value is not the same now."""
    rec = trace.data.get("replay", {})
    now = {
        "config_sha": config_sha(qa),
        "collection": env.collection,
        "alias_target": env.alias_target,
        "embedding_model": env.embedding_model,
        "code_version": env.code_version,
        **env.extra,
    }
    changed = [
        {"input": key, "then": rec.get(key), "now": value}
        for key, value in now.items()
        if key in rec and rec.get(key) != value
    ]
    documents = [(str(doc), int(version)) for doc, version in rec.get("documents", [])]
    active = active_versions(trace.tenant_id, sorted({doc for doc, _ in documents}))
    for doc, version in documents:
        if active.get(doc) != ids.version_id(doc, version):
            changed.append(
                {
                    "input": f"document {doc}",
                    "then": f"version {version}",
                    "now": "gone" if doc not in active else "another version",
                }
            )
    return changed


def passages_diff(then: list[dict[str, Any]], now: list[dict[str, Any]]) -> dict[str, Any]:
    """Passages added, removed, moved (rank) or rescored between the trace and the replay."""
    rank_then = {p["chunk_id"]: i for i, p in enumerate(then, start=1)}
    rank_now = {p["chunk_id"]: i for i, p in enumerate(now, start=1)}
    score_then = {p["chunk_id"]: p["score"] for p in then}
    added = [p for p in now if p["chunk_id"] not in rank_then]
    removed = [
        {k: p.get(k) for k in ("chunk_id", "document_id", "version", "score", "title")}
        for p in then
        if p["chunk_id"] not in rank_now
    ]
    moved = [
        {"chunk_id": c, "then": rank_then[c], "now": r}
        for c, r in rank_now.items()
        if c in rank_then and rank_then[c] != r
    ]
    rescored = [
        {"chunk_id": p["chunk_id"], "then": score_then[p["chunk_id"]], "now": p["score"]}
        for p in now
        if p["chunk_id"] in score_then
        and abs(float(score_then[p["chunk_id"]]) - float(p["score"])) > SCORE_EPSILON
    ]
    return {
        "changed": bool(added or removed or moved or rescored),
        "then": len(then),
        "now": len(now),
        "added": added,
        "removed": removed,
        "moved": moved,
        "rescored": rescored,
    }


def _lines(text: str) -> list[str]:
    """An answer's sentences one per line, so that the diff shows which changed."""
    return [s.strip() for s in text.replace(". ", ".\n").splitlines() if s.strip()]
