"""Prometheus collectors of the tasks worker."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MESSAGES = Counter(
    "veloera_tasks_messages_total", "JetStream messages handled by outcome", ["outcome"]
)
UP = Gauge("veloera_tasks_worker_up", "1 while the pull loop is running")
POLLS = Counter("veloera_tasks_polls_total", "Upstream task polls by outcome", ["outcome"])
REFUNDS = Counter(
    "veloera_tasks_refunds_total", "Refunds of failed tasks sent to billing", ["outcome"]
)
FETCHES = Counter("veloera_tasks_fetches_total", "TASKS_FETCH requests by outcome", ["outcome"])
