"""What an answer's trace holds, and how it is made.

The request path only takes a :class:`Capture`: references to the objects the answer was made
from (the search result with its ranked lists, the passages given to the generator, the
checked answer and the generator's draft), a clock reading and the ids. Everything that costs
something (language detection, token counts, per-stage scores, JSON) happens in
:func:`build`, which the background writer calls (``monitoring.recorder``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core import ids
from core.domain import FieldCondition
from retrieval.search import SearchResult
from retrieval.service import QA
from retrieval.types import Answer, Message, Passage
from stores.catalog.traces import Arm, Route, TraceRecord
from stores.vectors import SearchFilter
from textmodels.language import detect_language

_MARKER = re.compile(r"\[(\d+)\]")
# The head of each stage's ranked list kept in a trace (ids and scores; the passages given
# carry their own stage scores whatever their rank).
STAGE_HEAD = 10


@dataclass(frozen=True)
class Served:
    """Who asked and which release answered: the first half of a trace, known before the
    answer."""

    id: str
    tenant_id: str
    caller: str
    route: Route
    release_id: str | None
    arm: Arm
    experiment_id: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True)
class Capture:
    """Everything a trace needs, taken by reference on the request path."""

    served: Served
    qa: QA
    question: str
    standalone: str
    flt: SearchFilter
    top_k: int | None
    search: SearchResult
    created_at: datetime
    latency_ms: float
    answer: Answer | None = None  # None: a search
    draft: str = ""
    used: Sequence[Passage] = ()
    history: Sequence[Message] = ()
    stream: bool = False


@dataclass(frozen=True)
class Environment:
    """What a replay needs besides the question, read once per batch by the writer: the
    vector collection (and the physical one behind its alias), model revisions, code version.
    """

    collection: str = ""
    alias_target: str | None = None
    embedding_model: str = ""
    code_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def build(
    capture: Capture,
    env: Environment,
    count_tokens: Callable[[str], int],
    chunk_tokens: dict[str, int] | None = None,
) -> TraceRecord:
    """The stored trace of ``capture``. ``chunk_tokens``: the passages' token counts as the
    chunker recorded them (tokenizing eight passages again costs ~3 ms of CPU a trace, the
    question and the answer ~0.2 ms); a passage missing from it is counted."""
    known = chunk_tokens or {}
    s, search, answer = capture.served, capture.search, capture.answer
    passages = [_passage(p, search) for p in search.passages]
    timings = dict(search.timings_ms)
    retrieval_ms = timings.get("total", 0.0)
    timings["generate"] = round(max(0.0, capture.latency_ms - retrieval_ms), 2) if answer else 0.0
    timings["ask_total"] = round(capture.latency_ms, 2)
    data: dict[str, Any] = {
        "standalone_question": capture.standalone,
        "history": [{"role": m.role, "content": m.content} for m in capture.history],
        "filter": _filter(capture.flt),
        "top_k": capture.top_k,
        "stream": capture.stream,
        "passages": passages,
        "stages": {
            stage: {
                "count": len(hits),
                "top": [{"id": h.id, "score": round(h.score, 6)} for h in hits[:STAGE_HEAD]],
            }
            for stage, hits in search.ranked.items()
        },
        "timings_ms": timings,
        "document_ids": sorted({p.document_id for p in search.passages}),
        "replay": {
            "release_id": s.release_id,
            "config_sha": config_sha(capture.qa),
            "config": {
                "retrieval": capture.qa.retriever.to_dict(),
                "generator": capture.qa.generator.to_dict(),
            },
            "collection": env.collection,
            "alias_target": env.alias_target,
            "embedding_model": env.embedding_model,
            "code_version": env.code_version,
            "documents": sorted(
                {(p.document_id, p.version) for p in search.passages}, key=lambda d: d
            ),
            **env.extra,
        },
    }
    refused, dropped = False, 0
    prompt_tokens = count_tokens(capture.standalone)
    if answer is not None:
        kept = {c.n for c in answer.citations}
        drafted = {int(n) for n in _MARKER.findall(capture.draft)}
        dropped_markers = sorted(drafted - kept)
        refused, dropped = not answer.grounded, len(dropped_markers)
        used = list(capture.used)
        prompt_tokens += sum(known.get(p.chunk_id) or count_tokens(p.text) for p in used)
        prompt_tokens += sum(count_tokens(m.content) for m in capture.history)
        data["used"] = [p.n for p in used]
        data["answer"] = {
            "text": answer.text,
            "grounded": answer.grounded,
            "citations": [asdict(c) for c in answer.citations],
            "draft": capture.draft,
            "dropped": dropped_markers,
        }
        data["tokens"] = {"input": prompt_tokens, "output": count_tokens(answer.text)}
    else:
        data["tokens"] = {"input": prompt_tokens, "output": 0}
    return TraceRecord(
        id=s.id,
        tenant_id=s.tenant_id,
        created_at=capture.created_at,
        route=s.route,
        caller=s.caller,
        release_id=s.release_id,
        arm=s.arm,
        experiment_id=s.experiment_id,
        parent_id=s.parent_id,
        question=capture.question,
        language=detect_language(capture.standalone),
        refused=refused,
        latency_ms=round(capture.latency_ms, 2),
        top_score=top_score(search),
        citations_dropped=dropped,
        data=data,
        document_ids=tuple(data["document_ids"]),
    )


def top_score(search: SearchResult) -> float | None:
    """The best dense similarity when the dense stage ran (a cosine, comparable from one
    question to the next), else the best passage's score."""
    dense = search.ranked.get("dense")
    if dense:
        return round(dense[0].score, 6)
    return search.passages[0].score if search.passages else None


def config_sha(qa: QA) -> str:
    """The hash of the query-time configuration that answered: retrieval settings and the
    generator's. Equal to the trace's when a replay runs the same pipeline."""
    return ids.content_hash(
        {"retrieval": qa.retriever.to_dict(), "generator": qa.generator.to_dict()}
    )[:16]


def _passage(p: Passage, search: SearchResult) -> dict[str, Any]:
    stages: dict[str, dict[str, float]] = {}
    for stage, hits in search.ranked.items():
        for rank, h in enumerate(hits, start=1):
            if h.id == p.chunk_id:
                stages[stage] = {"score": round(h.score, 6), "rank": rank}
                break
    return {
        "n": p.n,
        "chunk_id": p.chunk_id,
        "document_id": p.document_id,
        "version": p.version,
        "title": p.title,
        "collection": p.collection,
        "language": p.language,
        "page_start": p.page_start,
        "page_end": p.page_end,
        "section_path": list(p.section_path),
        "text": p.text,
        "score": p.score,
        "stages": stages,
    }


def _filter(flt: SearchFilter) -> dict[str, Any]:
    out = {k: v for k, v in asdict(flt).items() if v not in (None, (), [])}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def search_filter(data: dict[str, Any]) -> SearchFilter:
    """The filter a trace was searched with (its ``data["filter"]``), for a replay."""
    values = dict(data)
    values["fields"] = tuple(FieldCondition(**f) for f in values.get("fields", ()))
    return SearchFilter(**values)


def trace_json(r: TraceRecord) -> dict[str, Any]:
    """A trace as the API returns and exports it: its columns, its feedback, and its data
    (passages with stage scores, answer, citations, timings, tokens, replay inputs)."""
    fb = r.feedback
    return {
        "id": r.id,
        "created_at": r.created_at.isoformat(),
        "route": r.route,
        "caller": r.caller,
        "release_id": r.release_id,
        "arm": r.arm,
        "experiment_id": r.experiment_id,
        "parent_id": r.parent_id,
        "question": r.question,
        "language": r.language,
        "refused": r.refused,
        "latency_ms": r.latency_ms,
        "top_score": r.top_score,
        "citations_dropped": r.citations_dropped,
        "feedback": None
        if fb is None
        else {
            "rating": fb.rating,
            "reason": fb.reason,
            "corrected_answer": fb.corrected_answer,
            "rated_at": fb.rated_at.isoformat() if fb.rated_at else None,
        },
        **r.data,
    }
