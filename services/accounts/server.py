"""Builds and runs the accounts gRPC server (pool, NATS, health, graceful shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health
from nats.aio.client import Client as NATS
from veloera.accounts.v1 import accounts_pb2, accounts_pb2_grpc

from services.accounts import options_repo
from services.accounts.deps import Deps, LoginPolicy
from services.accounts.events import EventPublisher
from services.accounts.notify import delivery
from services.accounts.notify.worker import Worker, pull_loop
from services.accounts.servicer import AccountsServicer, RelayAccountsServicer
from services.accounts.settings import Settings
from services.shared import nats_auth, natsutil
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

logger = logging.getLogger(__name__)

SERVICE_NAMES = [
    accounts_pb2.DESCRIPTOR.services_by_name[name].full_name
    for name in ("AccountsService", "RelayAccountsService")
]


@dataclass(frozen=True, slots=True)
class BuiltServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    servicer: AccountsServicer


def build_server(settings: Settings, deps: Deps) -> BuiltServer:
    """The gRPC server with the accounts servicer and health registered (not started)."""
    server, health_servicer = build_grpc_server(
        settings.port,
        host=settings.bind_host,
        service_names=SERVICE_NAMES,
        caller_tokens=settings.caller_tokens,
    )
    servicer = AccountsServicer(deps)
    accounts_pb2_grpc.add_AccountsServiceServicer_to_server(servicer, server)
    accounts_pb2_grpc.add_RelayAccountsServiceServicer_to_server(
        RelayAccountsServicer(deps), server
    )
    return BuiltServer(server=server, health=health_servicer, servicer=servicer)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then stop taking calls and drain within the grace period."""
    pool = await create_pool(
        settings.database_url.value, schema="accounts", max_size=settings.db_pool_size
    )
    nc = await natsutil.connect(
        settings.nats_url,
        name="veloera-accounts",
        user=nats_auth.ACCOUNTS,
        password=settings.nats_password,
    )
    try:
        await natsutil.ensure_streams(nc.jetstream())
        deps = Deps(
            pool=pool,
            box=SecretBox(settings.crypto_secret.value),
            events=EventPublisher(nc),
            login_policy=LoginPolicy(
                max_per_account=settings.login_max_failures_per_account,
                max_per_ip=settings.login_max_failures_per_ip,
                lock_seconds=settings.login_lock_minutes * 60,
                slowdown_after=settings.login_slowdown_after,
                slowdown_seconds=settings.login_slowdown_seconds,
            ),
            generate_default_token=settings.generate_default_token,
            smtp_timeout=settings.smtp_timeout,
            channel_private_addresses=settings.channel_private_addresses,
            webhook_private_addresses=settings.notify.allow_private,
            email_resend_seconds=settings.email_resend_seconds,
        )
        async with pool.acquire() as conn:
            sealed = await options_repo.seal_plaintext_secrets(conn, deps.box)
        if sealed:
            logger.info("encrypted %d secret options stored in plaintext", len(sealed))
        built = build_server(settings, deps)
        serve_metrics(settings.metrics_port, settings.bind_host)
        await built.server.start()
        settle_after_startup()
        await mark_serving(built.health, SERVICE_NAMES)
        follower = asyncio.create_task(
            follow_dependencies(
                built.health,
                SERVICE_NAMES,
                {"postgres": pool_probe(pool), "nats": nats_probe(nc)},
                interval=settings.health_interval,
            )
        )
        logger.info("accounts serving on %s:%s", settings.bind_host, settings.port)
        async with _notifier(settings, deps, nc):
            await _wait_for_signal()
            logger.info("accounts shutting down")
        follower.cancel()
        await mark_not_serving(built.health, SERVICE_NAMES)
        await built.server.stop(settings.shutdown_grace)
        await built.servicer.drain()
    finally:
        await natsutil.drain(nc)
        await pool.close()


@contextlib.asynccontextmanager
async def _notifier(settings: Settings, deps: Deps, nc: NATS) -> AsyncIterator[None]:
    """The notification worker (services/accounts/notify) for as long as the block runs."""
    session = delivery.open_session(allow_private=settings.notify.allow_private)
    worker = Worker(pool=deps.pool, box=deps.box, session=session, config=settings.notify)
    task = asyncio.create_task(pull_loop(nc, worker))
    task.add_done_callback(_report_stopped)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await session.close()


def _report_stopped(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("notification worker stopped", exc_info=task.exception())


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
