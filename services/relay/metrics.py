"""Prometheus collectors of the relay (bounded labels only)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "veloera_relay_requests_total", "Relay requests answered", ["route", "status_class"]
)
OVERHEAD_SECONDS = Histogram(
    "veloera_relay_overhead_seconds",
    "Time spent in the relay itself, excluding the upstream wait",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
)
UPSTREAM_SECONDS = Histogram(
    "veloera_relay_upstream_seconds",
    "Upstream wait per attempt (until the headers, for streams)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
RETRIES = Counter("veloera_relay_retries_total", "Upstream attempts retried on another channel")
SETTLEMENTS_DEFERRED = Counter(
    "veloera_relay_settlements_deferred_total", "Settlements published to JetStream"
)
