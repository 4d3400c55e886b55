"""Readiness: every backend the settings configure answers within a short time limit.

``/health`` says the process is alive; ``/ready`` says it can serve: the catalog, the broker, the
vector store, the graph store and, when one is configured, the LLM endpoint. The checks run in
parallel, each bounded by ``GEDRAG_OBSERVABILITY__READY_TIMEOUT_S``, so a hung backend costs one
time limit, not one per component. The API adds ``models`` (``serving.warmup``): "loading" while
the text models load at start, which is not ready either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kombu.connection import Connection

from core.errors import GedragError
from core.http import openai_client
from core.settings import Settings
from runtime import Runtime


@dataclass(frozen=True)
class Component:
    status: Literal["up", "down", "loading"]
    backend: str
    latency_ms: float | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Check:
    backend: str
    run: Callable[[], None]


def checks(rt: Runtime) -> dict[str, Check]:
    """The checks of the backends this process is configured with."""
    s = rt.settings
    timeout = s.observability.ready_timeout_s
    found = {
        "catalog": Check(rt.catalog.engine.dialect.name, rt.catalog.ping),
        "broker": Check(
            "embedded" if s.embedded_broker else s.broker.url.split(":", 1)[0],
            lambda: _broker(s.broker.url, timeout),
        ),
        # Lambdas: the stores open on first use, inside the time-limited check.
        "vectors": Check(
            "qdrant server" if s.qdrant.url else "qdrant local", lambda: rt.vectors.ping()
        ),
        "graph": Check(s.graph.backend, lambda: rt.graph.ping()),
    }
    if _uses_llm(s):
        found["llm"] = Check("openai-compatible", lambda: llm_answers(s, timeout))
    return found


def probe(found: dict[str, Check], timeout_s: float) -> dict[str, Component]:
    """Run the checks in parallel; a check still running after ``timeout_s`` reads as down."""
    started: dict[str, float] = {}
    ended: dict[str, float] = {}

    def timed(name: str, check: Check) -> None:
        started[name] = time.perf_counter()
        try:
            check.run()
        finally:
            ended[name] = time.perf_counter()

    pool = ThreadPoolExecutor(max_workers=len(found), thread_name_prefix="ready")
    futures = {name: pool.submit(timed, name, check) for name, check in found.items()}
    wait(futures.values(), timeout=timeout_s)
    pool.shutdown(wait=False, cancel_futures=True)  # a hung check must not hold the response
    report: dict[str, Component] = {}
    for name, future in futures.items():
        backend = found[name].backend
        if not future.done():
            report[name] = Component("down", backend, detail=f"no answer within {timeout_s} s")
            continue
        latency = round((ended[name] - started[name]) * 1000, 1)
        error = future.exception()
        if error is None:
            report[name] = Component("up", backend, latency)
        else:
            detail = error.detail if isinstance(error, GedragError) else repr(error)
            report[name] = Component("down", backend, latency, detail)
    return report


def as_json(report: dict[str, Component]) -> dict[str, Any]:
    ready = all(c.status == "up" for c in report.values())
    return {
        "status": "ready" if ready else "unavailable",
        "components": {name: asdict(c) for name, c in report.items()},
    }


def _uses_llm(s: Settings) -> bool:
    return s.generation.backend == "vllm" or s.entities.extractor == "llm"


def _broker(url: str, timeout: float) -> None:
    with Connection(url, connect_timeout=timeout) as conn:  # type: ignore[no-untyped-call]
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)


def llm_answers(s: Settings, timeout: float) -> None:
    """The LLM endpoint lists its models (vLLM: ``GET /v1/models``)."""
    url, _, key = s.llm.endpoint()
    with openai_client(url, key, timeout) as client:
        client.get("/models").raise_for_status()
