"""Starting an evaluation over HTTP (`POST /v1/eval/runs`, what the console's releases page
offers): promoters only, names never paths, one run at a time, followed by polling, and run in
the harness's own namespace (a tenant's documents are untouched)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.settings import EvaluationSettings
from tests.e2e.conftest import Api
from tests.support.shipped_suites import ship_suites

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def shipped_suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return ship_suites(tmp_path / "suites", monkeypatch)


def wait_for(api: Api, run_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        run: dict[str, Any] = api.client.get(f"/v1/eval/runs/{run_id}", headers=api.h()).json()
        seen.append(run.get("progress") or {})
        if run["state"] != "running":
            run["seen_progress"] = seen
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still running after {timeout} s")


def test_a_promoter_starts_a_run_and_follows_it_to_its_scores(
    make_api: Callable[..., Api], shipped_suites: Path
) -> None:
    api = make_api(evaluation=EvaluationSettings(promoters=["acme"]))
    listed = api.client.get("/v1/eval/suites", headers=api.h("globex")).json()
    assert {(s["name"], s["available"]) for s in listed} == {("tiny", True), ("absent", False)}
    assert next(s for s in listed if s["name"] == "tiny")["description"].startswith("Northwind")
    # A tenant's own document, to show the evaluation neither reads nor changes it.
    mine = api.upload("mine.md", b"# Mine\n\nOnly acme's words.\n").json()
    assert api.wait(mine["job_id"])["state"] == "succeeded"

    started = api.client.post(
        "/v1/eval/runs", headers=api.h(), json={"release": "default", "suite": "tiny"}
    )
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["state"] == "running" and run["suite"] == "tiny" and run["scores"] == {}
    assert run["report_url"] == f"/v1/eval/runs/{run['id']}/report.html"
    again = api.client.post("/v1/eval/runs", headers=api.h(), json={"suite": "tiny"})
    assert again.status_code == 409 and run["id"] in again.json()["detail"]

    done = wait_for(api, run["id"])
    assert done["state"] == "succeeded", done["info"]
    assert done["scores"]["recall@k"] == 1.0 and len(done["results"]) == 9
    stages = {p.get("stage") for p in done["seen_progress"]}
    assert "answer + score" in stages, stages  # progress was reported while it ran
    assert "progress" not in api.client.get(f"/v1/eval/runs/{run['id']}", headers=api.h()).json()
    releases = api.client.get("/v1/releases", headers=api.h("globex")).json()["releases"]
    assert [r["name"] for r in releases] == ["default"]
    assert releases[0]["latest_runs"][0]["id"] == run["id"]

    # In its own namespace: acme still has exactly its one document, and nothing else appeared.
    docs = api.client.get("/v1/documents", headers=api.h()).json()["items"]
    assert [d["id"] for d in docs] == [mine["document_id"]]
    assert api.client.get("/v1/documents", headers=api.h("globex")).json()["items"] == []
    assert any((api.settings.data_dir / "eval").iterdir())

    # The server is free again: a second run starts (and is left to finish with the test).
    second = api.client.post("/v1/eval/runs", headers=api.h(), json={"suite": "tiny"})
    assert second.status_code == 202
    assert wait_for(api, second.json()["id"])["state"] == "succeeded"


@pytest.fixture(scope="module")
def refusing(make_api_module: Callable[..., Api]) -> Api:
    return make_api_module(evaluation=EvaluationSettings(promoters=["acme"]))


@pytest.mark.parametrize(
    ("tenant", "body", "status", "error"),
    [
        ("globex", {"suite": "tiny"}, 403, "forbidden"),
        ("acme", {"suite": "nope"}, 404, "not_found"),
        ("acme", {"suite": "absent"}, 404, "not_found"),
        ("acme", {"suite": "tiny", "release": "no-such-release"}, 404, "not_found"),
        # Names only: a caller cannot make the server read a file it names.
        ("acme", {"suite": "tiny", "release": "../../etc/passwd"}, 422, "invalid_input"),
        ("acme", {"suite": "tiny", "release": "/tmp/x.yaml"}, 422, "invalid_input"),
        ("acme", {"suite": "../suites/tiny"}, 422, "invalid_input"),
        ("acme", {}, 422, "invalid_input"),
        ("acme", {"suite": "tiny", "extra": 1}, 422, "invalid_input"),
    ],
)
def test_refused_runs_say_why_and_start_nothing(
    refusing: Api,
    shipped_suites: Path,
    tenant: str,
    body: dict[str, Any],
    status: int,
    error: str,
) -> None:
    api = refusing
    r = api.client.post("/v1/eval/runs", headers=api.h(tenant), json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["detail"]
    assert api.client.get("/v1/releases", headers=api.h()).json()["releases"] == []
    assert not (api.settings.data_dir / "eval").exists()
    assert api.client.post("/v1/eval/runs", json={"suite": "tiny"}).status_code == 401
