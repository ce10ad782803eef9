"""Wiring of the billing service: pool, NATS, pricing cache, gRPC server and background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing.api.consumer import run_consumer, stream_drained
from services.billing.api.servicer import BillingServicer, RelayBillingServicer
from services.billing.context import Billing
from services.billing.metering import reaper
from services.billing.pricing.live import LivePrices
from services.billing.settings import Settings
from services.billing.store import partitions
from services.shared import nats_auth, natsutil, singleton, subjects
from services.shared.crypto import SecretBox
from services.shared.db import create_pool
from services.shared.gctune import settle_after_startup
from services.shared.grpcutil import (
    build_grpc_server,
    follow_dependencies,
    mark_not_serving,
    mark_serving,
    nats_probe,
    pool_probe,
)
from services.shared.metrics import serve_metrics
from services.shared.natsutil import connect, ensure_streams

logger = logging.getLogger(__name__)

_MAINTENANCE_INTERVAL = 6 * 3600.0
_RESTART_DELAY = 5.0
SERVICE_NAMES = [
    billing_pb2.DESCRIPTOR.services_by_name[name].full_name
    for name in ("BillingService", "RelayBillingService")
]


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _supervise(name: str, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a background loop forever: a crash is logged and the loop restarted, never lost
    silently (a dead settlement consumer would leave deferred settlements unapplied)."""
    while True:
        try:
            await job()
            logger.error("background job %s returned; restarting it", name)
        except asyncio.CancelledError:
            raise
        except Exception:  # restart whatever went wrong, after a pause
            logger.exception("background job %s crashed; restarting it", name)
        await asyncio.sleep(_RESTART_DELAY)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then stop accepting calls, drain within the grace period,
    stop the background loops and close the pool and the NATS connection."""
    serve_metrics(settings.metrics_port, settings.bind_host)
    pool = await create_pool(
        settings.database_url.value, schema="billing", max_size=settings.db_pool_size
    )
    nc = await connect(
        settings.nats_url,
        name="veloera-billing",
        user=nats_auth.BILLING,
        password=settings.nats_password,
    )
    js = nc.jetstream()
    await ensure_streams(js)

    async def announce(key: str) -> None:
        await nc.publish(subjects.PRICES_CHANGED, key.encode())

    async def reload(_msg: Msg) -> None:
        await prices.refresh_quietly()

    prices = LivePrices(
        pool,
        refresh_seconds=settings.pricing_refresh_seconds,
        box=SecretBox(settings.crypto_secret.value),
        announce=announce,
    )
    if await prices.seal_plaintext_secrets():
        logger.info("encrypted the secret pricing options stored in plaintext")
    await prices.refresh()
    await nc.subscribe(subjects.PRICES_CHANGED, cb=reload)
    async with pool.acquire() as conn:
        await partitions.ensure_ahead(conn, months=settings.log_partitions_ahead)
    billing = Billing(pool=pool, prices=prices, js=js, hold_ttl=settings.default_hold_ttl)

    server, health = build_grpc_server(
        settings.port,
        host=settings.bind_host,
        service_names=SERVICE_NAMES,
        caller_tokens=settings.caller_tokens,
    )
    billing_pb2_grpc.add_BillingServiceServicer_to_server(BillingServicer(billing), server)
    billing_pb2_grpc.add_RelayBillingServiceServicer_to_server(
        RelayBillingServicer(billing), server
    )
    stop = _stop_event()
    await server.start()
    background: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "pricing refresher": prices.run_refresher,
        # One replica sweeps at a time (the sweeps were safe in parallel, only wasted work).
        "hold reaper": lambda: singleton.run_in_one_replica(
            settings.database_url.value,
            "billing hold reaper",
            lambda: reaper.run(
                billing, settings.hold_reaper_interval, may_reap=lambda: stream_drained(js)
            ),
        ),
        "settlement consumer": lambda: run_consumer(
            billing, js, batch=settings.settlement_fetch_batch
        ),
        "log partition maintainer": lambda: partitions.run_maintainer(
            pool, months=settings.log_partitions_ahead, interval=_MAINTENANCE_INTERVAL
        ),
        "health follower": lambda: follow_dependencies(
            health,
            SERVICE_NAMES,
            {"postgres": pool_probe(pool), "nats": nats_probe(nc)},
            interval=settings.health_interval,
        ),
    }
    tasks = [asyncio.create_task(_supervise(name, job)) for name, job in background.items()]
    settle_after_startup()
    await mark_serving(health, SERVICE_NAMES)
    logger.info("billing serving on %s:%d", settings.bind_host, settings.port)
    try:
        await stop.wait()
    finally:
        await mark_not_serving(health, SERVICE_NAMES)
        await server.stop(settings.shutdown_grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await natsutil.drain(nc)
        await pool.close()
        logger.info("billing stopped")
