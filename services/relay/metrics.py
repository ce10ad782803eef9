"""Prometheus collectors of the relay (bounded labels only: no user, key or raw model names).

`model` labels carry the requested model name only when a channel serves it (the routing
snapshot bounds that set); unknown names are folded into `other`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "veloera_relay_requests_total",
    "Relay requests answered",
    ["route", "model", "channel", "status_class"],
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
FIRST_TOKEN_SECONDS = Histogram(
    "veloera_relay_time_to_first_token_seconds",
    "From the request to the first upstream data line of a stream",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RETRIES = Counter("veloera_relay_retries_total", "Upstream attempts retried on another channel")
ATTEMPT_FAILURES = Counter(
    "veloera_relay_upstream_failures_total",
    "Failed upstream attempts",
    ["kind", "status_class"],
)
TOKENS = Counter("veloera_relay_tokens_total", "Tokens metered", ["direction", "estimated"])
QUOTA_CHARGED = Counter(
    "veloera_relay_quota_charged_total", "Quota units charged (as reported by billing)"
)
SETTLEMENTS_DEFERRED = Counter(
    "veloera_relay_settlements_deferred_total", "Settlements published to JetStream"
)
STREAM_ENDS = Counter("veloera_relay_stream_ends_total", "How client streams ended", ["reason"])
CHANNELS = Gauge("veloera_relay_channels", "Channels in the routing snapshot by state", ["state"])
KEYS = Gauge("veloera_relay_channel_keys", "Enabled channel keys in the routing snapshot")
ROUTING_UPDATES = Counter(
    "veloera_relay_routing_updates_total",
    "Routing state updates by kind (delta: patched in place; full: snapshot rebuilt)",
    ["kind"],
)
ROUTING_APPLY_SECONDS = Histogram(
    "veloera_relay_routing_apply_seconds",
    "Event-loop time of one routing delta (its slices summed; a full snapshot is built off it)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0),
)
CHANNEL_REPORTS = Counter(
    "veloera_relay_channel_reports_total",
    "Attempt results reported to accounts, and what accounts disabled",
    ["outcome"],
)
ERROR_LOGS = Counter(
    "veloera_relay_error_logs_total",
    "Error log rows sent to billing (LogErrorEnabled)",
    ["outcome"],
)
