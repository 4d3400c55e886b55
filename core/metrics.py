"""Prometheus metrics of every gedrag process (API and workers), in the default registry.

The API serves them at ``/metrics``; a ``gedrag worker`` on its own port
(``GEDRAG_OBSERVABILITY__WORKER_METRICS_PORT``). Label values are bounded sets (route templates,
stage names, job kinds), never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds; HTTP and retrieval are sub-second, ingestion steps and generation run to minutes.
FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

HTTP_LATENCY = Histogram(
    "gedrag_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["method", "route", "status"],
    buckets=FAST,
)
INGEST_STAGE = Histogram(
    "gedrag_ingestion_stage_duration_seconds",
    "Duration of one ingestion stage for one document version.",
    ["stage"],
    buckets=SLOW,
)
JOBS = Counter("gedrag_jobs_total", "Jobs finished, by kind and outcome.", ["kind", "outcome"])
QUEUE_DEPTH = Gauge(
    "gedrag_queue_depth",
    "Jobs not finished, by state (catalog), read at scrape time by the API.",
    ["state"],
)
RETRIEVAL = Histogram(
    "gedrag_retrieval_duration_seconds",
    "Retrieval latency by stage (dense, sparse, graph, fuse, rerank... and total).",
    ["stage"],
    buckets=FAST,
)
GENERATION = Histogram(
    "gedrag_generation_duration_seconds",
    "Answer generation latency by generator and mode (complete or stream).",
    ["generator", "mode"],
    buckets=SLOW,
)
TOKENS = Counter(
    "gedrag_generated_tokens_total",
    "Tokens of generated answers (the model's count for vLLM, words for the extractive one).",
    ["generator"],
)

# -- monitoring (issue #27) -------------------------------------------------------------------
TRACES = Counter(
    "gedrag_traces_total",
    "Answer traces by outcome: written, dropped (the writer's queue was full) or failed "
    "(the catalog refused them).",
    ["outcome"],
)
TRACE_QUEUE = Gauge("gedrag_trace_queue_depth", "Traces waiting for the background writer.")
SHADOW = Counter(
    "gedrag_shadow_answers_total",
    "Questions sent to a shadow release: answered, skipped (its queue was full) or failed.",
    ["outcome"],
)
DRIFT = Gauge(
    "gedrag_drift_value",
    "The last drift report's statistic per tenant, check and comparison (reference window or "
    "the production release's suite): p-values, PSI, rates, p95 ratios.",
    ["tenant", "check", "against"],
)
DRIFT_ALERT = Gauge(
    "gedrag_drift_alert",
    "1 when the last drift report's check crossed its threshold, else 0.",
    ["tenant", "check", "against"],
)
CANARY = Gauge(
    "gedrag_canary_guardrail_value",
    "The canary's last guardrail measurements (refusal and negative feedback rate "
    "differences, p95 latency ratio) against production.",
    ["tenant", "guardrail"],
)
ROLLBACKS = Counter("gedrag_canary_rollbacks_total", "Canaries rolled back by a guardrail.")
