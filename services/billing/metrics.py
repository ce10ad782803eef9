"""Prometheus collectors of the billing service (bounded labels only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RESERVES = Counter(
    "veloera_billing_reserves_total", "Reserve calls by outcome", ["outcome"]
)  # outcome: placed, repeated, token_exhausted, user_exhausted
SETTLEMENTS = Counter(
    "veloera_billing_settlements_total", "Settlements by outcome", ["outcome"]
)  # outcome: settled, repeated, empty
RELEASES = Counter("veloera_billing_releases_total", "Releases by outcome", ["outcome"])
QUOTA_CHARGED = Counter("veloera_billing_quota_charged_total", "Quota units charged")
QUOTA_UNCOLLECTED = Counter(
    "veloera_billing_quota_uncollected_total", "Quota units used above what the user had left"
)
HOLDS_REAPED = Counter("veloera_billing_holds_reaped_total", "Expired holds settled by the reaper")
DEFERRED = Counter(
    "veloera_billing_deferred_messages_total", "Deferred settlement messages", ["kind", "result"]
)
CONSUMER_UP = Gauge("veloera_billing_settlement_consumer_up", "1 while the consumer is running")
LEASES = Counter(
    "veloera_billing_leases_total", "Lease events", ["outcome"]
)  # outcome: granted, returned, trimmed, reaped, per_request, insufficient_user_quota, ...
