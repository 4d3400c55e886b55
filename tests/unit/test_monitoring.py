"""Monitoring without services: the drift statistics (MMD, PSI, rates, p95), the drift
checks and their thresholds, sticky canary assignment, the guardrails' decisions, what a
trace holds, the OpenTelemetry export, suites made from feedback, alerts and the daily clock."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from core.settings import GuardrailSettings, MonitoringSettings
from evaluation.suites import load_suite
from monitoring import alerts, drift, feedback, online, stats, tasks
from monitoring.otel import OtelExport, otel_trace_id
from monitoring.report import to_html
from monitoring.traces import Capture, Environment, Served, build, trace_json
from retrieval.search import SearchResult
from retrieval.types import Answer, Citation, Message, Passage
from stores.catalog.traces import TracePoint
from stores.vectors import SearchFilter, VectorHit

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(7)


# -- statistics -------------------------------------------------------------------------------


def test_mmd_finds_a_shift_and_not_noise() -> None:
    same = [
        stats.mmd_test(RNG.normal(size=(60, 8)), RNG.normal(size=(60, 8)), seed=i)
        for i in range(20)
    ]
    assert sum(r.p_value < 0.01 for r in same) <= 1
    assert all(0 < r.p_value <= 1 for r in same)
    shifted = stats.mmd_test(RNG.normal(size=(60, 8)), RNG.normal(0.6, 1, size=(60, 8)))
    assert shifted.p_value == pytest.approx(1 / 501) and shifted.statistic > 0
    # Deterministic: the same samples and seed give the same p-value.
    x, y = RNG.normal(size=(30, 4)), RNG.normal(size=(30, 4))
    assert stats.mmd_test(x, y, seed=3) == stats.mmd_test(x, y, seed=3)
    with pytest.raises(ValueError, match="two vectors"):
        stats.mmd_test(x[:1], y)


def test_psi_by_hand_and_its_floor() -> None:
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert stats.psi([50, 50], [90, 10]) == pytest.approx(expected)
    assert stats.psi([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    # An empty bin counts as 1e-4, not as an infinite log.
    assert math.isfinite(stats.psi([100, 0], [50, 50]))
    with pytest.raises(ValueError, match="same bins"):
        stats.psi([1, 2], [1, 2, 3])


def test_psi_test_needs_both_size_and_significance() -> None:
    a, b = RNG.normal(size=100), RNG.normal(size=100)
    noise = stats.psi_test(a, b)
    # Two samples of 100 from one distribution already score ~0.1-0.2: hence the p-value.
    assert 0.02 < noise.statistic < 0.5 and noise.p_value > 0.01
    moved = stats.psi_test(a, RNG.normal(1.5, 1, size=100))
    assert moved.statistic > 1 and moved.p_value < 0.01


def test_categorical_psi_of_languages() -> None:
    ref = ["fr"] * 80 + ["en"] * 20
    assert stats.categorical_psi_test(ref, ["fr"] * 78 + ["en"] * 22).p_value > 0.05
    shifted = stats.categorical_psi_test(ref, ["en"] * 70 + ["fr"] * 30)
    assert shifted.statistic > 0.25 and shifted.p_value < 0.01
    assert stats.shares(["fr", "fr", "en", "de"]) == {"fr": 0.5, "en": 0.25, "de": 0.25}


def test_two_proportions_z_test() -> None:
    r = stats.two_proportions(10, 100, 30, 100)
    assert r.statistic == pytest.approx(0.2)
    assert r.p_value == pytest.approx(math.erfc(0.2 / math.sqrt(0.2 * 0.8 * 0.02) / math.sqrt(2)))
    assert stats.two_proportions(0, 50, 0, 50).p_value == 1.0


def test_p95_ratio_and_unpaired_bootstrap() -> None:
    base = list(RNG.uniform(40, 60, size=200))
    slow = [v * 2 for v in RNG.uniform(40, 60, size=200)]
    r = stats.p95_ratio_test(base, slow)
    assert r.statistic == pytest.approx(2, rel=0.1) and r.p_value < 0.01
    d = stats.unpaired_bootstrap([0.0] * 90 + [1.0] * 10, [0.0] * 50 + [1.0] * 50)
    assert d.mean == pytest.approx(0.4) and 0.25 < d.low < d.mean < d.high < 0.55
    p95 = stats.unpaired_bootstrap(base, slow, "p95")
    assert p95.low > 0 and p95.mean == pytest.approx(
        np.percentile(slow, 95, method="inverted_cdf")
        - np.percentile(base, 95, method="inverted_cdf")
    )
    assert stats.unpaired_bootstrap([], [1.0]).n == 0


# -- canary assignment and guardrails -------------------------------------------------------


def test_canary_assignment_is_sticky_proportional_and_monotone() -> None:
    callers = [f"user:{i}" for i in range(20_000)]
    tenth = {c for c in callers if online.in_canary("exp-1", c, 0.1)}
    assert abs(len(tenth) / len(callers) - 0.1) < 0.01
    assert tenth == {c for c in callers if online.in_canary("exp-1", c, 0.1)}  # sticky
    fifth = {c for c in callers if online.in_canary("exp-1", c, 0.2)}
    assert tenth <= fifth  # raising the share keeps those already in
    other = {c for c in callers if online.in_canary("exp-2", c, 0.1)}
    assert len(tenth & other) < 0.2 * len(tenth)  # another experiment draws other callers


def point(
    i: int, *, refused: bool = False, ms: float = 50.0, rating: int | None = None
) -> TracePoint:
    return TracePoint(
        id=str(i),
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        arm="production",
        release_id=None,
        parent_id=None,
        question="q",
        language="en",
        refused=refused,
        latency_ms=ms,
        top_score=0.5,
        citations_dropped=0,
        rating=rating,
    )


def arm(
    n: int, refusals: int = 0, ms: float = 50.0, down: int = 0, rated: int = 0
) -> list[TracePoint]:
    return [
        point(
            i,
            refused=i < refusals,
            ms=ms + (i % 10),
            rating=(-1 if i < down else 1) if i < rated else None,
        )
        for i in range(n)
    ]


CFG = GuardrailSettings()


def by_name(guards: list[online.Guard]) -> dict[str, online.Guard]:
    return {g.name: g for g in guards}


def test_guardrails_wait_for_enough_answers() -> None:
    guards = by_name(online.guardrails(arm(100), arm(CFG.min_questions - 1, refusals=19), CFG))
    assert not any(g.ready or g.tripped for g in guards.values())
    assert "19 canary and 100 production answers" in guards["refusal_rate"].detail


def test_a_canary_that_refuses_much_more_is_stopped() -> None:
    guards = by_name(online.guardrails(arm(200, refusals=20), arm(40, refusals=20), CFG))
    refusal = guards["refusal_rate"]
    assert refusal.tripped and refusal.value == pytest.approx(0.4)
    assert refusal.interval is not None and refusal.interval.low > 0
    assert not guards["latency_p95"].tripped and not guards["negative_feedback"].ready


def test_noise_and_small_rises_do_not_trip() -> None:
    # The same refusal rate: nothing.
    same = by_name(online.guardrails(arm(200, refusals=20), arm(40, refusals=4), CFG))
    assert not any(g.tripped for g in same.values())
    # A rise that is certain but smaller than the margin (0.05 < 0.10): nothing either.
    small = by_name(online.guardrails(arm(4000, refusals=400), arm(4000, refusals=600), CFG))
    assert small["refusal_rate"].interval.low > 0 and not small["refusal_rate"].tripped  # type: ignore[union-attr]
    # A large rise on few answers whose interval still reaches zero: not yet.
    few = by_name(online.guardrails(arm(20, refusals=2), arm(20, refusals=6), CFG))
    assert few["refusal_rate"].ready and not few["refusal_rate"].tripped


def test_latency_and_negative_feedback_guardrails() -> None:
    slow = by_name(online.guardrails(arm(100), arm(40, ms=200.0), CFG))
    assert slow["latency_p95"].tripped and slow["latency_p95"].value > 3  # type: ignore[operator]
    disliked = by_name(
        online.guardrails(arm(100, rated=50, down=5), arm(40, rated=20, down=12), CFG)
    )
    assert disliked["negative_feedback"].tripped
    assert disliked["negative_feedback"].value == pytest.approx(0.5)
    unrated = by_name(online.guardrails(arm(100, rated=50, down=5), arm(40, rated=5, down=5), CFG))
    assert not unrated["negative_feedback"].ready


# -- drift checks -------------------------------------------------------------------------------


def window(questions: list[str], **kw: Any) -> drift.Window:
    n = len(questions)
    values: dict[str, Any] = {
        "languages": ["en"] * n,
        "top_scores": list(RNG.uniform(0.4, 0.6, size=n)),
        "refused": [False] * n,
        "dropped": [False] * n,
        "latencies": list(RNG.uniform(40, 60, size=n)),
        "ratings": [None] * n,
    }
    values.update(kw)
    return drift.Window(questions=questions, **values)


def topic_embed(texts: list[str]) -> list[list[float]]:
    """Vectors whose mean depends on the question's topic word (a statistic's input, not a
    model: the real embedder runs in the e2e test and the benchmark)."""
    rng = np.random.default_rng(len(texts))
    return [list(rng.normal(1.0 if "tax" in t else 0.0, 1.0, size=16)) for t in texts]


def test_the_drift_checks_cross_only_on_real_changes() -> None:
    cfg = MonitoringSettings(min_questions=30, permutations=200)
    ref = window([f"leave question {i}" for i in range(60)])
    same = window([f"leave question {i}" for i in range(60)])
    checks = {c.name: c for c in drift.compare(ref, same, "reference", cfg, topic_embed)}
    assert set(checks) == {
        "questions",
        "language",
        "top_score",
        "refusal_rate",
        "citation_drop_rate",
        "feedback_rate",
        "negative_feedback_rate",
        "latency_p95",
        "document_types",
        "document_languages",
    }
    assert not any(c.crossed for c in checks.values())
    assert checks["negative_feedback_rate"].value is None  # nothing rated: not judged
    assert "not enough data" in checks["document_types"].detail

    moved = window(
        [f"tax question {i}" for i in range(60)],
        languages=["fr"] * 60,
        refused=[i < 30 for i in range(60)],
        latencies=list(RNG.uniform(150, 200, size=60)),
    )
    crossed = {
        c.name for c in drift.compare(ref, moved, "reference", cfg, topic_embed) if c.crossed
    }
    assert crossed == {"questions", "language", "refusal_rate", "latency_p95"}


def test_against_the_suite_only_what_a_suite_has() -> None:
    cfg = MonitoringSettings(min_questions=5, permutations=100)
    suite = drift.Window.of_suite(["How long is parental leave?"] * 10, [False] * 10, [40.0] * 10)
    names = {c.name for c in drift.compare(suite, window(["a"] * 10), "suite", cfg, topic_embed)}
    assert names == {"questions", "language", "refusal_rate", "latency_p95"}


def test_windows_default_and_given() -> None:
    cfg = MonitoringSettings(window_days=1, reference_days=7)
    now = datetime(2026, 12, 10, tzinfo=UTC)
    last, ref = drift.windows(cfg, now)
    assert last == (now - timedelta(days=1), now) and ref == (now - timedelta(days=8), last[0])
    with pytest.raises(ValueError, match="must start before"):
        drift.windows(cfg, now, since=now - timedelta(hours=1), reference_since=now)


# -- traces -------------------------------------------------------------------------------------


@dataclass
class Configured:
    """What a trace reads of a QA stack: its components' configuration."""

    config: dict[str, Any] = field(default_factory=lambda: {"mode": "hybrid"})

    def to_dict(self) -> dict[str, Any]:
        return self.config


@dataclass
class Stack:
    retriever: Configured = field(default_factory=Configured)
    generator: Configured = field(default_factory=lambda: Configured({"name": "extractive"}))


def passage(n: int, chunk: str, doc: str = "d1") -> Passage:
    return Passage(n, chunk, doc, 2, "Contract", f"text of {chunk}", 0.9 - n / 10)


def capture(answer: Answer | None, draft: str = "") -> Capture:
    hits = {
        "dense": [VectorHit("c2", 0.71, {}), VectorHit("c1", 0.65, {}), VectorHit("c9", 0.2, {})],
        "sparse": [VectorHit("c1", 7.5, {})],
    }
    found = SearchResult([passage(1, "c1"), passage(2, "c2")], {"dense": 3.0, "total": 10.0}, hits)
    return Capture(
        served=Served("t-1", "tenant", "key:abc", "chat", "rel_x", "canary", "exp", None),
        qa=Stack(),  # type: ignore[arg-type]
        question="And its price?",
        standalone="What is the contract's duration? And its price?",
        flt=SearchFilter(tenant_id="tenant", collections=["contracts"]),
        top_k=5,
        search=found,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        latency_ms=42.0,
        answer=answer,
        draft=draft,
        used=found.passages[:1],
        history=[Message("user", "What is the contract's duration?")],
    )


def test_a_trace_holds_stage_scores_citations_tokens_and_replay_inputs() -> None:
    cited = Citation(1, "c1", "d1", "Contract", 2, None, "text")
    c = capture(Answer("Three years [1].", [cited]), draft="Three years [1][3].")
    env = Environment("gedrag_minilm", "gedrag_minilm_v2", "all-MiniLM-L6-v2", "0.1+gabc")
    r = build(c, env, lambda text: len(text.split()))
    assert (r.id, r.arm, r.release_id, r.experiment_id, r.route) == (
        "t-1",
        "canary",
        "rel_x",
        "exp",
        "chat",
    )
    assert r.language == "en" and not r.refused and r.latency_ms == 42.0
    assert r.top_score == pytest.approx(0.71)  # the best dense cosine, not the fused score
    assert r.citations_dropped == 1 and r.data["answer"]["dropped"] == [3]
    p1 = r.data["passages"][0]
    assert p1["stages"] == {
        "dense": {"score": 0.65, "rank": 2},
        "sparse": {"score": 7.5, "rank": 1},
    }
    assert r.data["used"] == [1] and r.document_ids == ("d1",)
    assert r.data["stages"]["dense"]["count"] == 3
    assert r.data["timings_ms"]["generate"] == 32.0
    # Tokens: the standalone question, the passage given and the history; the answer.
    assert r.data["tokens"] == {"input": 8 + 3 + 5, "output": 3}
    replay = r.data["replay"]
    assert replay["collection"] == "gedrag_minilm" and replay["alias_target"] == "gedrag_minilm_v2"
    assert replay["documents"] == [("d1", 2)] and len(replay["config_sha"]) == 16
    assert r.data["filter"] == {"tenant_id": "tenant", "collections": ["contracts"]}
    out = trace_json(r)
    assert out["feedback"] is None and out["passages"] == r.data["passages"]


def test_a_refusal_and_a_search_trace() -> None:
    refused = build(
        capture(Answer("Not found in the documents.", [], grounded=False)), Environment(), len
    )
    assert refused.refused and refused.citations_dropped == 0
    search = build(capture(None), Environment(), len)
    assert (
        not search.refused and "answer" not in search.data and search.data["tokens"]["output"] == 0
    )


def test_otel_export_with_the_genai_conventions() -> None:
    cited = Citation(1, "c1", "d1", "Contract", 2, None, "text")
    record = build(
        capture(Answer("Three years [1].", [cited]), "Three years [1]."), Environment("col"), len
    )
    record = type(record)(**{**record.__dict__, "id": "0f8fad5b-d9cb-469f-a165-70867728950e"})
    memory = InMemorySpanExporter()
    OtelExport(memory, batch=False)([record])
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert set(spans) == {"invoke_workflow gedrag.chat", "retrieval col", "chat extractive"}
    root, chat = spans["invoke_workflow gedrag.chat"], spans["chat extractive"]
    assert {s.context.trace_id for s in spans.values()} == {otel_trace_id(record.id)}
    assert root.parent is None and chat.parent.span_id == root.context.span_id  # type: ignore[union-attr]
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"  # type: ignore[index]
    assert spans["retrieval col"].attributes["gen_ai.operation.name"] == "retrieval"  # type: ignore[index]
    assert chat.attributes["gen_ai.usage.output_tokens"] == len("Three years [1].")  # type: ignore[index]
    assert json.loads(chat.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == (  # type: ignore[index,arg-type]
        "Three years [1]."
    )
    assert chat.end_time - root.start_time == pytest.approx(42e6, rel=1e-3)  # type: ignore[operator]
    # Without content, no text leaves: ids, scores, timings and counts only.
    bare = InMemorySpanExporter()
    OtelExport(bare, content=False, batch=False)([record])
    text = json.dumps([dict(s.attributes or {}) for s in bare.get_finished_spans()])
    assert (
        "Three years" not in text
        and "text of c1" not in text
        and "gen_ai.input.messages" not in text
    )


# -- suites from feedback -----------------------------------------------------------------------


def exported(
    tid: str,
    question: str,
    rating: str | None,
    *,
    grounded: bool = True,
    corrected: str | None = None,
    arm: str = "production",
) -> dict[str, Any]:
    passages = [
        {
            "n": 1,
            "chunk_id": f"{tid}-a",
            "title": "Leave",
            "text": "Parental leave lasts sixteen weeks at full salary.",
        },
        {
            "n": 2,
            "chunk_id": f"{tid}-b",
            "title": "Travel",
            "text": "Hotels are reimbursed up to 180 euros in Paris.",
        },
    ]
    answer = {
        "text": "Sixteen weeks [1]." if grounded else "Not found in the documents.",
        "grounded": grounded,
        "citations": [{"n": 1}] if grounded else [],
    }
    fb = None if rating is None else {"rating": rating, "reason": "", "corrected_answer": corrected}
    return {
        "id": tid,
        "question": question,
        "arm": arm,
        "passages": passages,
        "answer": answer,
        "feedback": fb,
        "created_at": "2026-12-01T00:00:00+00:00",
    }


def test_rated_answers_become_a_suite_that_loads(tmp_path: Path) -> None:
    traces = [
        exported("t1", "How long is parental leave?", "up"),
        exported("t0", "how long is  parental leave?", "down", corrected="x"),  # older: ignored
        exported(
            "t2", "What is the hotel limit in Paris?", "down", corrected="Up to 180 euros in Paris."
        ),
        exported("t3", "Is there a company car?", "up", grounded=False),  # a right refusal
        exported("t4", "Who signs the contracts?", "down"),  # wrong, nothing to learn
        exported("t5", "Unrated?", None),
        exported("t6", "Shadow?", "up", arm="shadow"),
    ]
    rows = feedback.suite_rows(traces)
    assert [r["id"] for r in rows] == ["t1", "t2", "t3"]
    assert rows[0]["relevant_ids"] == ["t1-a"] and rows[0]["ground_truth"] == "Sixteen weeks [1]."
    assert rows[1]["corrected"] and rows[1]["relevant_ids"] == ["t2-b"]  # the supporting passage
    assert rows[2]["is_impossible"] and rows[2]["ground_truth"] == ""
    descriptor = feedback.write_suite(rows, tmp_path / "s", "feedback")
    suite = load_suite(str(descriptor))
    # Every trace retrieved the same two passages (other chunk ids, one text each): the corpus
    # holds each text once, and relevant ids name the copy kept.
    assert suite.name == "feedback" and len(suite.questions) == 3 and len(suite.corpus) == 2
    q = {x.id: x for x in suite.questions}
    assert q["t2"].reference == "Up to 180 euros in Paris." and q["t2"].relevant_ids == ["t1-b"]
    assert not q["t3"].answerable
    # A suite's id is its content: a new export with another rating is another version.
    rows[0]["ground_truth"] = "16 weeks."
    again = load_suite(str(feedback.write_suite(rows, tmp_path / "s2", "feedback")))
    assert again.id != suite.id
    with pytest.raises(ValueError, match="no rated answer"):
        feedback.write_suite([], tmp_path / "s3", "feedback")


# -- alerts, report page, daily clock -------------------------------------------------------


def crossed_report() -> drift.DriftReport:
    cfg = MonitoringSettings(min_questions=30, permutations=100)
    ref = window([f"leave {i}" for i in range(40)])
    cur = window([f"tax {i}" for i in range(40)], languages=["fr"] * 40)
    checks = drift.compare(ref, cur, "reference", cfg, topic_embed)
    now = datetime(2026, 12, 10, tzinfo=UTC)
    return drift.DriftReport(
        "t",
        now,
        (now - timedelta(days=1), now),
        (now - timedelta(days=8), now - timedelta(days=1)),
        None,
        checks,
    )


def test_alerts_log_set_gauges_and_call_the_webhook(caplog: pytest.LogCaptureFixture) -> None:
    report = crossed_report()
    sent: list[dict[str, Any]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(204)

    cfg = MonitoringSettings(webhook_url="https://hooks.example/abc")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="monitoring.alerts"):
        body = alerts.publish(report, "acme-unit", cfg, transport=httpx.MockTransport(hook))
    assert body is not None and sent == [body]
    assert {a["check"] for a in body["alerts"]} == {"questions", "language"}
    assert sum(r.getMessage() == "drift alert" for r in caplog.records) == 2
    labels = {"tenant": "acme-unit", "check": "language", "against": "reference"}
    assert REGISTRY.get_sample_value("gedrag_drift_alert", labels) == 1
    labels["check"] = "refusal_rate"
    assert REGISTRY.get_sample_value("gedrag_drift_alert", labels) == 0
    # A webhook that fails is logged, not raised.
    down = httpx.MockTransport(lambda r: httpx.Response(500))
    with caplog.at_level(logging.WARNING, logger="monitoring.alerts"):
        alerts.publish(report, "acme-unit", cfg, transport=down)
    assert any(r.getMessage() == "drift webhook failed" for r in caplog.records)


def test_the_report_page_draws_every_check() -> None:
    page = to_html(crossed_report().to_dict())
    assert page.count("<svg") >= 3 and 'class="crossed"' in page and "Alerts: questions" in page
    assert "<script" not in page


def test_the_daily_clock() -> None:
    now = datetime.now(UTC)
    earlier = f"{max(0, now.hour - 1):02d}:00" if now.hour else "00:00"
    assert tasks.due(earlier, None)
    assert not tasks.due(earlier, now.date())
    later = "23:59" if (now.hour, now.minute) < (23, 59) else None
    if later:
        assert not tasks.due(later, None)
