"""Prometheus metrics of the API process (exposed at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "omniflow_http_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "omniflow_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WORKFLOW_STARTS = Counter(
    "omniflow_workflow_starts_total", "Workflow starts requested by the API", ["workflow", "outcome"]
)
WORKFLOW_MESSAGES = Counter(
    "omniflow_workflow_messages_total",
    "Signals and updates sent to workflows by the API",
    ["workflow", "kind", "name", "outcome"],
)
UPDATES_FINISHED = Counter(
    "omniflow_updates_finished_total",
    "Updates not answered in time (503), sent again by the API until answered, by how that ended",
    ["workflow", "name", "outcome"],
)
IDEMPOTENT_REPLAYS = Counter("omniflow_idempotent_replays_total", "Responses replayed for an Idempotency-Key")
ORDER_LINES_TURNED_AWAY = Counter(
    "omniflow_order_lines_turned_away_total",
    "Lines of orders without backorders refused at intake (409 insufficient-stock), by rule",
    ["rule"],
)
