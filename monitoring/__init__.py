"""The MLOps loop in production (issue #27): answer traces written off the request path,
feedback on answers, suites made from that feedback, drift reports with alerts, and online A/B
between releases (shadow and canary, guardrails, promotion through the gate).

``service.Monitor`` is what serving calls; the rest are its parts: ``traces`` (what a trace
holds), ``recorder`` (the background writer), ``otel`` (OpenTelemetry export), ``online``
(experiments and guardrails), ``stats`` and ``drift`` (two-sample tests and reports),
``report`` and ``alerts``, ``feedback`` (suites from ratings), ``replay``, ``tasks`` (Celery).
"""
