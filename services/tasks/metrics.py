"""Prometheus collectors of the tasks worker."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MESSAGES = Counter(
    "veloera_tasks_messages_total", "JetStream messages handled by outcome", ["outcome"]
)
UP = Gauge("veloera_tasks_worker_up", "1 while the pull loop is running")
