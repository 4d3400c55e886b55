"""Operations: request ids, JSON logs with context, Prometheus metrics, readiness."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.observability import ContextFilter, JsonFormatter
from core.settings import BrokerSettings, GenerationSettings, LLMSettings
from tests.e2e.conftest import Api
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

TEXT = (
    b"Annual maintenance contract\n\n"
    b"The boiler of the Lyon office is serviced every October by Acme Heating. "
    b"The maintenance contract number is MC-2291 and costs 1200 euros per year.\n"
)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """gedrag's JSON log lines of the test, as the CLI configures them in production."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def test_request_id_is_returned_and_a_callers_own_is_kept(make_api: Callable[..., Api]) -> None:
    api = make_api()
    made = api.client.get("/health").headers["X-Request-ID"]
    assert len(made) == 32
    assert made != api.client.get("/health").headers["X-Request-ID"]
    kept = api.client.get("/health", headers={"X-Request-ID": "trace-42.a"})
    assert kept.headers["X-Request-ID"] == "trace-42.a"
    for hostile in ("a b<script>", "x" * 129):
        replaced = api.client.get("/health", headers={"X-Request-ID": hostile})
        assert len(replaced.headers["X-Request-ID"]) == 32
    # Errors carry one too.
    assert api.client.get("/v1/documents").headers["X-Request-ID"]


def test_json_logs_carry_request_id_job_id_and_tenant(
    make_api: Callable[..., Api], json_log: io.StringIO
) -> None:
    api = make_api()
    response = api.client.post(
        "/v1/documents",
        headers={**api.h(), "X-Request-ID": "req-upload-1"},
        files={"file": ("contract.txt", TEXT)},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert api.wait(job_id)["state"] == "succeeded"

    records = lines(json_log)
    access = [r for r in records if r["logger"] == "gedrag.access" and r.get("request_id")]
    upload = next(r for r in access if r["request_id"] == "req-upload-1")
    tenant = api.client.app.state.runtime.catalog.tenants.authenticate(api.keys["acme"]).id  # type: ignore[attr-defined]
    assert upload["tenant"] == tenant
    assert upload["route"] == "/v1/documents"
    assert upload["status"] == 202
    assert upload["duration_ms"] > 0
    # The worker's records of that job name the job and its tenant.
    worker = [r for r in records if r.get("job_id") == job_id]
    messages = [r["message"] for r in worker]
    assert "version searchable" in messages and "version indexed" in messages, worker
    assert all(r.get("tenant") == tenant for r in worker), worker


def metric_samples(api: Api) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return sum(v for lab, v in samples.get(name, []) if labels.items() <= lab.items())


def test_metrics_show_latency_histograms_after_a_few_requests(
    make_api: Callable[..., Api],
) -> None:
    api = make_api()
    # The app's warm-up runs one search in the background when it starts: let it end first.
    assert api.client.app.state.warmup.wait(120)  # type: ignore[attr-defined]
    before = metric_samples(api)  # metrics are per process; tests before this one count too
    job = api.upload("contract.txt", TEXT).json()["job_id"]
    assert api.wait(job)["state"] == "succeeded"
    for _ in range(3):
        assert api.client.get("/v1/documents", headers=api.h()).status_code == 200
    asked = api.client.post(
        "/v1/ask", headers=api.h(), json={"question": "Who services the boiler of the Lyon office?"}
    )
    assert asked.status_code == 200, asked.text
    after = metric_samples(api)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    listing = {"route": "/v1/documents", "method": "GET", "status": "200"}
    assert grew("gedrag_http_request_duration_seconds_count", **listing) == 3
    assert grew("gedrag_http_request_duration_seconds_bucket", le="+Inf", **listing) == 3
    assert grew("gedrag_http_request_duration_seconds_sum", **listing) > 0
    # Ids never become labels: the job route is counted under its template.
    routes = {lab["route"] for lab, _ in after["gedrag_http_request_duration_seconds_count"]}
    assert "/v1/jobs/{job_id}" in routes
    assert not any(job in r for r in routes)
    for stage in ("parse", "chunk", "embed", "vector_write", "entities", "graph_write"):
        assert grew("gedrag_ingestion_stage_duration_seconds_count", stage=stage) >= 1, stage
    assert grew("gedrag_jobs_total", kind="ingest", outcome="succeeded") >= 1
    assert grew("gedrag_retrieval_duration_seconds_count", stage="total") == 1
    assert grew("gedrag_generation_duration_seconds_count", generator="extractive") == 1
    assert grew("gedrag_generated_tokens_total", generator="extractive") > 0
    assert value(after, "gedrag_queue_depth", state="queued") == 0


def test_ready_turns_503_when_postgresql_goes_and_200_when_it_is_back(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    try:
        api = make_api(postgres_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/"))
        api.client.app.state.warmup.wait(120)  # type: ignore[attr-defined]  # models loaded
        ok = api.client.get("/ready")
        assert ok.status_code == 200, ok.text
        parts = ok.json()["components"]
        assert set(parts) == {"catalog", "broker", "vectors", "graph", "models"}
        assert parts["catalog"] == {
            "status": "up",
            "backend": "postgresql",
            "latency_ms": parts["catalog"]["latency_ms"],
            "detail": None,
        }

        proxy.stop()
        down = api.client.get("/ready")
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "unavailable"
        assert body["components"]["catalog"]["status"] == "down"
        assert "catalog unavailable" in body["components"]["catalog"]["detail"]
        assert body["components"]["graph"]["status"] == "down"  # its tables are in PostgreSQL
        assert body["components"]["vectors"]["status"] == "up"
        assert api.client.get("/health").status_code == 200  # alive, only not ready
        assert api.client.get("/metrics").status_code == 200

        proxy.start()
        back = api.client.get("/ready")
        assert back.status_code == 200, back.text
    finally:
        proxy.stop()


# Nothing listens on port 1: real connection failures, reported per component.


def test_ready_names_an_unreachable_llm(make_api: Callable[..., Api]) -> None:
    api = make_api(
        generation=GenerationSettings(backend="vllm"),
        llm=LLMSettings(url="http://127.0.0.1:1/v1", model="m"),
    )
    response = api.client.get("/ready")
    assert response.status_code == 503
    parts = response.json()["components"]
    assert parts["llm"]["status"] == "down"
    assert parts["catalog"]["status"] == "up"


def test_ready_names_an_unreachable_broker(make_api: Callable[..., Api]) -> None:
    api = make_api(broker=BrokerSettings(url="redis://127.0.0.1:1/0"))
    parts = api.client.get("/ready").json()["components"]
    assert parts["broker"] == {
        "status": "down",
        "backend": "redis",
        "latency_ms": parts["broker"]["latency_ms"],
        "detail": parts["broker"]["detail"],
    }
    assert "Connection refused" in parts["broker"]["detail"]
