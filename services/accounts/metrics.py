"""Prometheus collectors of the accounts service."""

from __future__ import annotations

from prometheus_client import Counter

LOGINS = Counter("veloera_accounts_logins_total", "Password logins", ["result"])
AUTHENTICATIONS = Counter(
    "veloera_accounts_authentications_total", "API key authentications", ["result"]
)
EVENTS_PUBLISHED = Counter(
    "veloera_accounts_change_events_total", "Change events published", ["kind", "result"]
)
KEYS_AUTO_DISABLED = Counter(
    "veloera_accounts_channel_keys_auto_disabled_total", "Channel keys disabled automatically"
)
CHANNELS_AUTO_DISABLED = Counter(
    "veloera_accounts_channels_auto_disabled_total", "Channels disabled automatically"
)
SNAPSHOTS = Counter("veloera_accounts_routing_snapshots_total", "Routing snapshots", ["result"])
NOTIFICATIONS = Counter(
    "veloera_accounts_notifications_total",
    "Notification deliveries by outcome (delivered, retry, failed, limited, poison)",
    ["outcome"],
)
