"""Wiring of the billing service: pool, NATS, pricing cache, gRPC server and background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing.consumer import run_consumer
from services.billing.core import BillingCore
from services.billing.prices import PricingStore
from services.billing.servicer import BillingServicer
from services.billing.settings import Settings
from services.shared import natsutil
from services.shared.db import create_pool
from services.shared.grpcutil import build_grpc_server, mark_not_serving, mark_serving
from services.shared.metrics import serve_metrics
from services.shared.natsutil import connect, ensure_streams

logger = logging.getLogger(__name__)

SERVICE_NAME = billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then stop accepting calls, drain within the grace period,
    stop the background loops and close the pool and the NATS connection."""
    serve_metrics(settings.metrics_port, settings.bind_host)
    pool = await create_pool(
        settings.database_url, schema="billing", max_size=settings.db_pool_size
    )
    nc = await connect(settings.nats_url, name="veloera-billing")
    js = nc.jetstream()
    await ensure_streams(js)
    prices = PricingStore(pool, refresh_seconds=settings.pricing_refresh_seconds)
    await prices.refresh()
    core = BillingCore(pool, prices, js=js, default_ttl=settings.default_hold_ttl)

    server, health = build_grpc_server(
        settings.port, host=settings.bind_host, service_names=[SERVICE_NAME]
    )
    billing_pb2_grpc.add_BillingServiceServicer_to_server(BillingServicer(core), server)
    stop = _stop_event()
    await server.start()
    background: list[Coroutine[Any, Any, None]] = [
        prices.run_refresher(),
        core.run_reaper(settings.hold_reaper_interval),
        run_consumer(core, js, batch=settings.settlement_fetch_batch),
    ]
    tasks = [asyncio.create_task(job) for job in background]
    await mark_serving(health, [SERVICE_NAME])
    logger.info("billing serving on %s:%d", settings.bind_host, settings.port)
    try:
        await stop.wait()
    finally:
        await mark_not_serving(health, [SERVICE_NAME])
        await server.stop(settings.shutdown_grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await natsutil.drain(nc)
        await pool.close()
        logger.info("billing stopped")
