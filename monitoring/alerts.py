"""What a drift report raises: its values as Prometheus gauges, a WARNING log line per crossed
threshold, and an optional webhook (a JSON POST) when any is crossed. A webhook that fails is
logged; it never fails the report."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from core.metrics import DRIFT, DRIFT_ALERT
from core.settings import MonitoringSettings
from monitoring.drift import DriftReport

log = logging.getLogger(__name__)


def publish(
    report: DriftReport,
    tenant: str,
    cfg: MonitoringSettings,
    *,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any] | None:
    """Gauges for every check, a log line per alert, the webhook; returns what was POSTed
    (``None`` when nothing was)."""
    alerts = report.alerts
    for c in report.checks:
        if c.value is not None:
            DRIFT.labels(tenant, c.name, c.against).set(c.value)
        DRIFT_ALERT.labels(tenant, c.name, c.against).set(1 if c in alerts else 0)
    for c in alerts:
        log.warning(
            "drift alert",
            extra={
                "tenant": tenant,
                "check": c.name,
                "against": c.against,
                "value": c.value,
                "p_value": c.p_value,
                "threshold": c.threshold,
                "detail": c.detail,
            },
        )
    if not alerts or cfg.webhook_url is None:
        return None
    body = {
        "source": "gedrag",
        "event": "drift_alert",
        "tenant": tenant,
        "window": {"since": report.window[0].isoformat(), "until": report.window[1].isoformat()},
        "alerts": [
            {
                "check": c.name,
                "against": c.against,
                "value": c.value,
                "p_value": c.p_value,
                "threshold": c.threshold,
                "detail": c.detail,
            }
            for c in alerts
        ],
    }
    try:
        with httpx.Client(timeout=cfg.webhook_timeout_s, transport=transport) as client:
            client.post(cfg.webhook_url.get_secret_value(), json=body).raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("drift webhook failed", extra={"tenant": tenant, "error": str(exc)})
    return body
