"""Prometheus collectors every service shares, and the exposition endpoint of processes that
do not serve HTTP themselves."""

from __future__ import annotations

import time

import asyncpg
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from prometheus_client import Gauge, Histogram, start_http_server

# JetStream consumers (billing's settlements, the tasks worker): how far behind they are.
JETSTREAM_PENDING = Gauge(
    "veloera_jetstream_consumer_pending",
    "Messages in the stream not yet delivered to this durable consumer, as of its last fetch",
    ["consumer"],
)
JETSTREAM_MESSAGE_AGE = Histogram(
    "veloera_jetstream_message_age_seconds",
    "From a message being stored in its stream to a consumer handling it",
    ["consumer"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
# PostgreSQL pools, read at scrape time: in_use near max means requests queue for a connection.
DB_POOL_CONNECTIONS = Gauge(
    "veloera_db_pool_connections",
    "Connections of this process's PostgreSQL pool by state (in_use, idle, max)",
    ["schema", "state"],
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on a background thread (gRPC services and the tasks worker)."""
    if port > 0:
        start_http_server(port, addr=host)


def observe_consumed(consumer: str, msg: Msg) -> None:
    """Record a fetched JetStream message's age and what is still pending behind it."""
    try:
        metadata = msg.metadata
    except NatsError:  # not a JetStream message: nothing to measure
        return
    JETSTREAM_PENDING.labels(consumer).set(metadata.num_pending)
    age = time.time() - metadata.timestamp.timestamp()
    JETSTREAM_MESSAGE_AGE.labels(consumer).observe(max(age, 0.0))


def observe_idle(consumer: str) -> None:
    """An empty fetch: nothing is waiting for this consumer."""
    JETSTREAM_PENDING.labels(consumer).set(0)


def watch_pool(pool: asyncpg.Pool, schema: str) -> None:
    """Export the pool's sizes, computed when Prometheus scrapes (no work on the hot path)."""
    DB_POOL_CONNECTIONS.labels(schema, "max").set_function(pool.get_max_size)
    DB_POOL_CONNECTIONS.labels(schema, "idle").set_function(pool.get_idle_size)
    DB_POOL_CONNECTIONS.labels(schema, "in_use").set_function(
        lambda: pool.get_size() - pool.get_idle_size()
    )
