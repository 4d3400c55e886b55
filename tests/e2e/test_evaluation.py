"""The evaluation harness end to end on a tiny suite: runs, the promotion gate, the API, and
serving switching to the promoted release without a restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.settings import EvaluationSettings
from evaluation import runner
from evaluation import service as evals
from evaluation.release import RELEASES_DIR, Release, load_release
from evaluation.suites import Suite, load_suite
from stores.catalog.evaluation import EvalStore, StoredRun
from tests.conftest import FIXTURES
from tests.e2e.conftest import Api

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TINY = FIXTURES / "eval_suite"
GATE = RELEASES_DIR / "gate.yaml"


@dataclass
class Env:
    api: Api
    store: EvalStore
    suite: Suite
    default: Release
    worse: Release
    runs: dict[str, StoredRun]
    permissive: Path


@pytest.fixture(scope="module")
def env(make_api_module: Callable[..., Api], tmp_path_factory: pytest.TempPathFactory) -> Env:
    permissive = tmp_path_factory.mktemp("policy") / "gate.yaml"
    permissive.write_text("floors: {}\nmax_regression: {}\n")
    api = make_api_module(evaluation=EvaluationSettings(promoters=["acme"], release_cache_s=0))
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    store = EvalStore(rt.catalog)
    suite = load_suite(str(TINY / "suite.yaml"))
    default = load_release(RELEASES_DIR / "default.yaml")
    worse = load_release(RELEASES_DIR / "dense-top1.yaml")
    runs = {
        "default": runner.run(api.settings, default, suite, store),
        "default-again": runner.run(api.settings, default, suite, store),
        "worse": runner.run(api.settings, worse, suite, store),
    }
    return Env(api, store, suite, default, worse, runs, permissive)


def test_a_run_scores_every_question_and_reuses_the_index(env: Env) -> None:
    first = env.runs["default"]
    assert first.state == "succeeded" and first.suite == "tiny" and first.suite_id == env.suite.id
    assert len(first.results) == 9 and first.code_version
    assert first.info["index_reused"] is False
    assert env.runs["default-again"].info["index_reused"] is True
    assert env.runs["worse"].info["index_reused"] is True  # same ingestion half
    for metric in (
        "ndcg@10",
        "recall@k",
        "mrr",
        "semantic_similarity",
        "rouge_score",
        "id_based_context_recall",
        "non_llm_context_precision_with_reference",
    ):
        assert metric in first.scores
    assert first.scores["recall@k"] == 1.0  # every question's two documents are retrieved
    assert first.scores["refused"] == 1.0  # the unanswerable question is answered "not found"
    latency = first.info["latency_ms"]
    assert {"embed_query", "sparse", "generate", "ask_total"} <= set(latency)
    assert latency["ask_total"]["p95"] >= latency["ask_total"]["p50"] > 0


def test_the_same_release_on_the_same_suite_gives_the_same_scores(env: Env) -> None:
    a, b = env.runs["default"], env.runs["default-again"]
    assert a.id != b.id and a.scores == b.scores
    assert [r["scores"] for r in a.results] == [r["scores"] for r in b.results]


def test_worse_release_is_refused_and_better_promoted(env: Env) -> None:
    store = env.store
    # The worse release first becomes production under a policy with no floor at all ...
    first = evals.promote(store, env.worse.id, suite="tiny", policy_path=env.permissive)
    assert first.promoted and first.previous_id is None
    # ... then the default release beats it on the real policy and is promoted.
    better = evals.promote(store, env.default.id, suite="tiny", policy_path=GATE)
    assert better.promoted, better.reasons
    assert better.previous_id == env.worse.id
    assert better.evidence["comparisons"]["recall@k"]["mean"] == 0.5
    # The worse release is now refused, with readable reasons, and production is unchanged.
    refused = evals.promote(store, str(RELEASES_DIR / "dense-top1.yaml"), suite="tiny")
    assert not refused.promoted
    assert "recall@k 0.500 is below the floor 0.800" in refused.reasons
    regression = [r for r in refused.reasons if r.startswith("recall@k regressed by 0.500")]
    assert regression and "CI of the difference [-0.500, -0.500] over 8 questions" in regression[0]
    assert store.production_id() == env.default.id
    assert store.decisions(env.worse.id)[0].evidence["candidate_run"] == env.runs["worse"].id
    # The decision is recorded with its evidence even when refused.
    again = evals.promote(store, env.default.id, suite="tiny")
    assert not again.promoted and "already in production" in again.reasons[0]


def test_compare_shows_per_question_differences(env: Env) -> None:
    cmp = evals.compare(env.store, env.runs["worse"].id, env.runs["default"].id)
    assert cmp["metrics"]["recall@k"]["mean"] == 0.5
    per_q = {q["id"]: q for q in cmp["questions"]}
    assert per_q["t1"]["a"]["recall@k"] == 0.5 and per_q["t1"]["b"]["recall@k"] == 1.0
    assert per_q["t1"]["diff"]["recall@k"] == 0.5


def test_the_api_lists_releases_runs_and_reports(env: Env) -> None:
    api, h = env.api, env.api.h("globex")
    body = api.client.get("/v1/releases", headers=h).json()
    assert body["production"] == env.store.production_id()
    by_id = {r["id"]: r for r in body["releases"]}
    assert {env.default.id, env.worse.id} <= set(by_id)
    latest = by_id[env.worse.id]["latest_runs"][0]
    assert latest["suite"] == "tiny" and latest["suite_id"] == env.suite.id
    assert latest["report_url"] == f"/v1/eval/runs/{latest['id']}/report.html"
    assert set(latest["scores"]) >= {"ndcg@10", "recall@k"}

    one = api.client.get(f"/v1/releases/{env.worse.id}", headers=h).json()
    assert one["config"]["retrieval"]["top_k"] == 1 and one["name"] == "dense-top1"

    run = api.client.get(f"/v1/eval/runs/{latest['id']}", headers=h).json()
    assert run["release_id"] == env.worse.id and len(run["results"]) == 9
    page = api.client.get(latest["report_url"], headers=h)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and "<circle" in page.text

    assert api.client.get("/v1/releases").status_code == 401
    missing = api.client.get("/v1/eval/runs/nope", headers=h)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_promotion_over_http_is_for_promoters_only_and_explains_refusals(env: Env) -> None:
    api = env.api
    url = f"/v1/releases/{env.worse.id}/promote"
    forbidden = api.client.post(url, headers=api.h("globex"), json={"suite": "tiny"})
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    production = env.store.production_id()
    refused = api.client.post(url, headers=api.h("acme"), json={"suite": "tiny"}).json()
    assert refused["promoted"] is False and refused["release_id"] == env.worse.id
    assert refused["previous"] == production and refused["decision_id"]
    assert any("below the floor" in r for r in refused["reasons"])
    # No body: the policy's default suite, on which nothing was evaluated here.
    bare = api.client.post(url, headers=api.h("acme")).json()
    assert bare["promoted"] is False
    assert "no finished evaluation on suite 'fr_service_public_qa'" in bare["reasons"][0]
    assert env.store.production_id() == production


def test_serving_uses_the_promoted_release_without_restart(env: Env) -> None:
    api = env.api
    for line in (TINY / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        job = api.upload(f"{doc['_id']}.txt", f"{doc['title']}\n\n{doc['text']}".encode()).json()
        assert api.wait(job["job_id"])["state"] == "succeeded"

    def passages() -> int:
        r = api.client.post(
            "/v1/search", headers=api.h(), json={"query": "parental leave and return to work"}
        )
        return len(r.json()["passages"])

    assert env.store.production_id() == env.default.id
    assert passages() > 1  # default: top_k 8
    evals.promote(env.store, env.worse.id, suite="tiny", policy_path=env.permissive)
    assert passages() == 1  # dense-top1, same process, no restart
    evals.promote(env.store, env.default.id, suite="tiny", policy_path=env.permissive)
    assert passages() > 1
