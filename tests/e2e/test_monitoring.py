"""The MLOps loop end to end (issue #27): every answer traced (ask, chat, OpenAI-compatible,
MCP) and seen by its tenant only; answers rated (API and the OpenAI-compatible extra field) and
the ratings turned into a suite that the harness runs; a trace replayed; a challenger run in
shadow, then as a 10 % canary sticky per caller, then promoted through the gate with its online
evidence; a worse canary rolled back by its guardrail; the drift report flagging a change in
questions; the purge of a document taking the traces that quote it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from core.settings import (
    EvaluationSettings,
    GuardrailSettings,
    MonitoringSettings,
)
from evaluation import runner
from evaluation import service as evals
from evaluation.release import RELEASES_DIR, Release, load_release
from evaluation.suites import Suite, load_suite
from monitoring import feedback, online
from monitoring.service import Monitor, daily
from monitoring.tasks import BEAT_ENTRY
from stores.catalog.evaluation import EvalStore
from stores.catalog.models import utcnow
from tests.conftest import FIXTURES
from tests.e2e.conftest import Api

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TINY = FIXTURES / "eval_suite"
FRENCH = [
    "Combien de semaines dure le congé parental ?",
    "Où faut-il réserver les voyages d'affaires ?",
    "Quel est le plafond de remboursement d'un hôtel à Paris ?",
    "Qui faut-il prévenir avant une naissance ?",
    "Peut-on travailler à distance trois jours par semaine ?",
    "Les vols se réservent combien de jours à l'avance ?",
    "Les repas sont-ils remboursés pendant un déplacement ?",
    "Quand faut-il envoyer les justificatifs de dépenses ?",
    "Le train est-il préféré à l'avion pour les petits trajets ?",
    "Quelle est la règle pour la classe des billets d'avion ?",
]


@dataclass
class Env:
    api: Api
    monitor: Monitor
    store: EvalStore
    suite: Suite
    default: Release
    challenger: Release
    worse: Release
    docs: dict[str, str]
    started: datetime

    def ask(self, question: str, user: str | None = None, tenant: str = "acme") -> dict[str, Any]:
        headers = {**self.api.h(tenant), **({"X-Gedrag-User": user} if user else {})}
        r = self.api.client.post("/v1/ask", headers=headers, json={"question": question})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def get(self, path: str, tenant: str = "acme", **params: Any) -> Any:
        r = self.api.client.get(path, headers=self.api.h(tenant), params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body: dict[str, Any] | None = None, tenant: str = "acme") -> Any:
        return self.api.client.post(path, headers=self.api.h(tenant), json=body)

    def flush(self) -> None:
        assert self.monitor.flush(120)


def release_file(folder: Path, name: str, body: str) -> Release:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}")
    return load_release(path)


@pytest.fixture(scope="module")
def env(make_api_module: Callable[..., Api], tmp_path_factory: pytest.TempPathFactory) -> Env:
    started = utcnow()
    api = make_api_module(
        evaluation=EvaluationSettings(promoters=["acme"], release_cache_s=0),
        monitoring=MonitoringSettings(
            min_questions=8,
            permutations=200,
            experiment_cache_s=0,
            guardrails=GuardrailSettings(min_questions=5, min_ratings=3),
        ),
    )
    suite = load_suite(str(TINY / "suite.yaml"))
    docs: dict[str, str] = {}
    for d in suite.corpus:
        up = api.upload(f"{d.id}.txt", f"{d.title}\n\n{d.text}".encode(), collection="handbook")
        assert up.status_code == 202, up.text
        docs[d.id] = up.json()["document_id"]
        assert api.wait(up.json()["job_id"])["state"] == "succeeded"
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    store = EvalStore(rt.catalog)
    folder = tmp_path_factory.mktemp("releases")
    default = load_release(RELEASES_DIR / "default.yaml")
    # The challenger changes only retrieval (same index); the worse one refuses nearly all.
    challenger = release_file(folder, "challenger", "retrieval: {mmr_lambda: 0.9}\n")
    worse = release_file(folder, "worse", "generation: {min_coverage: 1.0, min_similarity: 1.0}\n")
    for release in (default, challenger):
        runner.run(api.settings, release, suite, store)
    permissive = folder / "gate.yaml"
    permissive.write_text("floors: {}\nmax_regression: {}\n")
    assert evals.promote(store, default.id, suite="tiny", policy_path=permissive).promoted
    evals.register(store, worse)
    monitor: Monitor = api.client.app.state.monitor  # type: ignore[attr-defined]
    return Env(api, monitor, store, suite, default, challenger, worse, docs, started)


def test_every_answer_is_traced_and_seen_by_its_tenant_only(env: Env) -> None:
    api = env.api
    asked = env.ask(env.suite.questions[0].question)
    chat = api.client.post(
        "/v1/chat",
        headers=api.h(),
        json={
            "messages": [{"role": "user", "content": env.suite.questions[1].question}],
            "stream": True,
        },
    )
    done = [line for line in chat.text.splitlines() if line.startswith("data:")][-1]
    streamed_id = json.loads(done[5:])["trace_id"]
    completion = api.client.post(
        "/v1/chat/completions",
        headers=api.h(),
        json={
            "model": "gedrag",
            "user": "alice",
            "messages": [{"role": "user", "content": env.suite.questions[2].question}],
        },
    ).json()
    mcp = api.client.post(
        "/mcp",
        headers={**api.h(), "Accept": "application/json, text/event-stream"},
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "ask", "arguments": {"question": env.suite.questions[3].question}},
        },
    )
    assert mcp.status_code == 200, mcp.text
    mcp_id = mcp.json()["result"]["structuredContent"]["trace_id"]
    search = api.client.post("/v1/search", headers=api.h(), json={"query": "parental leave"}).json()
    env.flush()

    ids = {asked["trace_id"], streamed_id, completion["trace_id"], mcp_id, search["trace_id"]}
    assert None not in ids and len(ids) == 5
    listed = env.get("/v1/traces", limit=200)["items"]
    by_id = {t["id"]: t for t in listed}
    assert ids <= set(by_id)
    assert {by_id[i]["route"] for i in ids} == {"ask", "chat", "openai", "mcp", "search"}
    # The trace names the authenticated caller; a front end's end user only follows it.
    me = by_id[asked["trace_id"]]["caller"]
    assert " for " not in me and by_id[mcp_id]["caller"] == me
    assert by_id[completion["trace_id"]]["caller"] == f"{me} for user:alice"
    spoofed = api.client.post(
        "/v1/ask",
        headers={**api.h(), "X-Gedrag-User": "bob"},
        json={"question": env.suite.questions[4].question},
    ).json()
    env.flush()
    assert env.get(f"/v1/traces/{spoofed['trace_id']}")["caller"] == f"{me} for user:bob"

    trace = env.get(f"/v1/traces/{asked['trace_id']}")
    assert trace["release_id"] == env.default.id and trace["arm"] == "production"
    assert trace["answer"]["text"] == asked["answer"] and trace["refused"] is (
        not asked["grounded"]
    )
    assert [p["chunk_id"] for p in trace["passages"]] == [p["chunk_id"] for p in asked["passages"]]
    top = trace["passages"][0]
    assert top["stages"] and all({"score", "rank"} <= set(v) for v in top["stages"].values())
    assert trace["used"] == [p["n"] for p in asked["passages"]]
    assert {c["n"] for c in trace["answer"]["citations"]} == {c["n"] for c in asked["citations"]}
    assert (
        trace["tokens"]["input"] > 0
        and trace["timings_ms"]["ask_total"] >= trace["timings_ms"]["total"]
    )
    assert trace["replay"]["release_id"] == env.default.id and trace["replay"]["collection"]
    assert trace["stream"] is False and env.get(f"/v1/traces/{streamed_id}")["stream"] is True

    # Another tenant sees none of it.
    assert env.get("/v1/traces", tenant="globex")["items"] == []
    other = api.client.get(f"/v1/traces/{asked['trace_id']}", headers=api.h("globex"))
    assert other.status_code == 404
    lines = api.client.get("/v1/traces/export", headers=api.h("globex")).text
    assert lines == ""
    exported = api.client.get("/v1/traces/export", headers=api.h())
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert {json.loads(line)["id"] for line in exported.text.splitlines()} >= ids


def test_ratings_become_a_suite_that_the_harness_runs(env: Env) -> None:
    api = env.api
    traced = [env.ask(q.question) for q in env.suite.questions[:6]]
    env.flush()
    ids = [t["trace_id"] for t in traced]
    assert env.post(f"/v1/traces/{ids[0]}/feedback", {"rating": "up"}).status_code == 200
    corrected = env.post(
        f"/v1/traces/{ids[1]}/feedback",
        {
            "rating": "down",
            "reason": "incomplete",
            "corrected_answer": "Flights are booked on Skylark fourteen days ahead; receipts go there within thirty days.",
        },
    ).json()
    assert (
        corrected["feedback"]["rating"] == "down"
        and corrected["feedback"]["reason"] == "incomplete"
    )
    assert env.post(f"/v1/traces/{ids[2]}/feedback", {"rating": "sideways"}).status_code == 422
    assert (
        env.post(f"/v1/traces/{ids[2]}/feedback", {"rating": "up"}, tenant="globex").status_code
        == 404
    )
    # The OpenAI-compatible endpoint's extra field rates an earlier answer.
    completion = api.client.post(
        "/v1/chat/completions",
        headers=api.h(),
        json={
            "messages": [{"role": "user", "content": "Thanks, and who approves travel?"}],
            "feedback": {"trace_id": ids[2], "rating": "up"},
        },
    )
    assert completion.status_code == 200, completion.text
    rated = env.get("/v1/traces", feedback="rated", limit=200)["items"]
    assert {t["id"] for t in rated} >= set(ids[:3])
    assert {t["rating"] for t in env.get("/v1/traces", feedback="down")["items"]} == {"down"}

    lines = api.client.get("/v1/traces/export", headers=api.h(), params={"feedback": "rated"}).text
    rows = feedback.suite_rows(json.loads(line) for line in lines.splitlines())
    assert len(rows) >= 3 and any(r["corrected"] for r in rows)
    folder = env.api.settings.data_dir / "suites" / "feedback-e2e"
    suite = load_suite(str(feedback.write_suite(rows, folder, "feedback")))
    assert {q.question for q in suite.questions} >= {env.suite.questions[0].question}
    run = runner.run(env.api.settings, env.default, suite, env.store)
    assert run.state == "succeeded" and len(run.results) == len(suite.questions)
    assert run.scores["recall@k"] > 0


def test_a_replay_says_what_changed(env: Env) -> None:
    question = env.suite.questions[4]  # answered from the parental leave documents
    first = env.ask(question.question)
    env.flush()
    same = env.post(f"/v1/traces/{first['trace_id']}/replay").json()
    assert same["same"] and same["inputs"] == [] and not same["passages"]["changed"]
    cited = first["passages"][0]["document_id"]
    text = "Parental leave at Northwind Logistics now lasts twenty weeks, fully paid, for every parent."
    up = env.api.client.post(
        f"/v1/documents/{cited}/versions",
        headers=env.api.h(),
        files={"file": ("leave.txt", text.encode())},
    )
    assert up.status_code == 202, up.text
    assert env.api.wait(up.json()["job_id"])["state"] == "succeeded"
    changed = env.post(f"/v1/traces/{first['trace_id']}/replay").json()
    assert not changed["same"]
    assert {
        "input": f"document {cited}",
        "then": f"version {first['passages'][0]['version']}",
        "now": "another version",
    } in changed["inputs"]
    assert changed["passages"]["changed"] and changed["answer"]["diff"]


def test_shadow_then_canary_then_promotion_through_the_gate(env: Env) -> None:
    exp = env.post("/v1/experiments", {"release": env.challenger.id, "mode": "shadow"})
    assert exp.status_code == 201, exp.text
    exp_id = exp.json()["id"]
    assert env.post("/v1/experiments", {"release": env.worse.id}).status_code == 409
    served = [env.ask(q.question) for q in env.suite.questions]
    env.flush()
    assert all(s["trace_id"] for s in served)
    shadows = env.get("/v1/traces", arm="shadow", experiment=exp_id, limit=200)["items"]
    assert len(shadows) == len(served)
    assert {t["release_id"] for t in shadows} == {env.challenger.id}
    one = env.get(f"/v1/traces/{shadows[0]['id']}")
    assert one["parent_id"] in {s["trace_id"] for s in served}
    # A shadow answer is never shown: it cannot be rated.
    assert env.post(f"/v1/traces/{shadows[0]['id']}/feedback", {"rating": "up"}).status_code == 422
    online_view = env.get(f"/v1/experiments/{exp_id}")["online"]
    assert online_view["shadow_pairs"] == len(served)
    assert online_view["paired"]["refused"]["n"] == len(served)
    assert any("only run in shadow" in r for r in online_view["blocking"])
    refused = env.post(f"/v1/experiments/{exp_id}/promote", {"suite": "tiny"}).json()
    assert not refused["promoted"] and any("only run in shadow" in r for r in refused["reasons"])

    # A 10 % canary, sticky per caller.
    canary = env.api.client.patch(
        f"/v1/experiments/{exp_id}", headers=env.api.h(), json={"mode": "canary", "share": 0.1}
    )
    assert canary.status_code == 200 and canary.json()["canary_since"]
    users = [f"user-{i}" for i in range(60)]
    for i, user in enumerate(users):
        env.ask(env.suite.questions[i % 8].question, user)
    env.flush()
    listed = env.get("/v1/traces", experiment=exp_id, limit=200)["items"]
    arms = {
        t["caller"]: t["arm"]
        for t in listed
        if t["arm"] != "shadow" and " for user:" in t["caller"]
    }
    me = next(iter(arms)).split(" for user:")[0]  # the key's owner, whom the front end names

    def front(u: str) -> str:
        return f"{me} for user:{u}"

    in_canary = {u for u in users if online.in_canary(exp_id, front(u), 0.1)}
    assert {c.split(" for user:")[1] for c, a in arms.items() if a == "canary"} == in_canary
    assert 1 <= len(in_canary) <= 15  # ~6 of 60
    again = env.ask(env.suite.questions[0].question, sorted(in_canary)[0])
    env.flush()
    assert env.get(f"/v1/traces/{again['trace_id']}")["release_id"] == env.challenger.id
    while sum(a == "canary" for a in arms.values()) < 6:  # the guardrails' minimum, and more
        user = next(
            u
            for u in (f"more-{i}" for i in range(10_000))
            if online.in_canary(exp_id, front(u), 0.1) and front(u) not in arms
        )
        env.ask(env.suite.questions[len(arms) % 8].question, user)
        arms[front(user)] = "canary"
    env.flush()
    decision = env.post(f"/v1/experiments/{exp_id}/promote", {"suite": "tiny"}, tenant="globex")
    assert decision.status_code == 403
    promoted = env.post(f"/v1/experiments/{exp_id}/promote", {"suite": "tiny"}).json()
    assert promoted["promoted"], promoted["reasons"]
    assert env.store.production_id() == env.challenger.id
    recorded = env.store.decisions(env.challenger.id)[0]
    assert recorded.evidence["online"]["experiment_id"] == exp_id
    assert recorded.evidence["online"]["arms"]["canary"]["answers"] >= 6
    assert "comparisons" in recorded.evidence and recorded.decided_by.endswith(f"(canary {exp_id})")
    assert env.get(f"/v1/experiments/{exp_id}")["state"] == "promoted"
    assert env.ask(env.suite.questions[0].question)["trace_id"]
    env.flush()
    assert env.get("/v1/traces", limit=1)["items"][0]["release_id"] == env.challenger.id


def test_a_worse_canary_is_rolled_back_by_its_guardrail(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    exp_id = env.post(
        "/v1/experiments", {"release": env.worse.id, "mode": "canary", "share": 0.5}
    ).json()["id"]
    asked = 0
    with caplog.at_level(logging.WARNING, logger="monitoring.online"):
        while env.get(f"/v1/experiments/{exp_id}")["state"] == "running":
            assert asked < 120, "the guardrail never tripped"
            env.ask(env.suite.questions[asked % 8].question, f"rollback-{asked}")
            asked += 1
            if asked % 5 == 0:
                env.flush()
    exp = env.get(f"/v1/experiments/{exp_id}")
    assert exp["state"] == "rolled_back" and exp["reason"].startswith("refusal_rate")
    assert any(r.getMessage() == "canary rolled back" for r in caplog.records)
    # Rolled back: everyone is answered by production again, and it cannot be promoted.
    env.ask(env.suite.questions[0].question, "rollback-0")
    env.flush()
    assert env.get("/v1/traces", limit=1)["items"][0]["arm"] == "production"
    refused = env.post(f"/v1/experiments/{exp_id}/promote", {"suite": "tiny"}).json()
    assert not refused["promoted"] and any("rolled back" in r for r in refused["reasons"])


def test_the_drift_report_flags_a_change_in_questions(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    since = utcnow()
    for question in FRENCH:
        env.ask(question)
    env.flush()
    body = {"since": since.isoformat(), "reference_since": env.started.isoformat()}
    with caplog.at_level(logging.WARNING, logger="monitoring.alerts"):
        report = env.post("/v1/monitoring/report", body).json()
    checks = {(c["name"], c["against"]): c for c in report["checks"]}
    assert checks[("questions", "reference")]["crossed"]
    assert checks[("language", "reference")]["crossed"]
    assert checks[("questions", "reference")]["sizes"][1] == len(FRENCH)
    assert "questions (reference)" in report["alerts"]
    assert any(r.getMessage() == "drift alert" for r in caplog.records)
    labels = {"tenant": "acme", "check": "questions", "against": "reference"}
    assert REGISTRY.get_sample_value("gedrag_drift_alert", labels) == 1
    # The release was promoted on a suite given by file: it is named, not found by name.
    assert any("suite" in n for n in report["notes"])
    assert env.get("/v1/monitoring/report")["id"] == report["id"]
    page = env.api.client.get("/v1/monitoring/report.html", headers=env.api.h())
    assert page.status_code == 200 and "<svg" in page.text and "questions" in page.text
    assert (
        env.api.client.get("/v1/monitoring/report", headers=env.api.h("globex")).status_code == 404
    )


def test_the_daily_job_and_a_purge(env: Env) -> None:
    rt = env.api.client.app.state.runtime  # type: ignore[attr-defined]
    celery = env.api.client.app.state.celery  # type: ignore[attr-defined]
    assert BEAT_ENTRY in celery.conf.beat_schedule
    result = daily(rt)
    assert "acme" in result["alerts"]
    # Purging a document takes the traces that quote it.
    doc = env.docs["travel-2"]
    quoting = [
        t
        for t in (
            json.loads(x)
            for x in env.api.client.get("/v1/traces/export", headers=env.api.h()).text.splitlines()
        )
        if doc in t["document_ids"]
    ]
    assert quoting
    env.api.purge(doc)
    left = env.api.client.get(f"/v1/traces/{quoting[0]['id']}", headers=env.api.h())
    assert left.status_code == 404
    settings = env.api.client.put(
        "/v1/traces/settings", headers=env.api.h(), json={"retention_days": 3}
    )
    assert settings.json() == {"retention_days": 3, "default": False}
    assert env.get("/v1/traces/settings", tenant="globex") == {
        "retention_days": 30,
        "default": True,
    }
