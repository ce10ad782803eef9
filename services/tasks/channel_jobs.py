"""Scheduled channel health (upstream `main.go`: AutomaticallyTestChannels every
CHANNEL_TEST_FREQUENCY minutes, AutomaticallyUpdateChannels every CHANNEL_UPDATE_FREQUENCY
minutes): each runs in exactly one tasks replica at a time (services/shared/singleton.py) and
goes through services/relay/health/checks.py, as the console's manual runs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from veloera.accounts.v1 import accounts_pb2_grpc

from services.relay.health import checks as channel_checks
from services.relay.health.probe import open_session
from services.shared import singleton
from services.shared.grpcutil import open_channel
from services.tasks.settings import Settings

logger = logging.getLogger(__name__)

RPC_TIMEOUT = 10.0
TEST_JOB = "channel tests"
BALANCE_JOB = "channel balances"


def _counted(name: str, run: Callable[[], Awaitable[int]]) -> singleton.Job:
    async def job() -> None:
        count = await run()
        logger.info("%s finished", name, extra={"channels": count})

    return job


def _jobs(settings: Settings, probing: channel_checks.Probing) -> dict[str, singleton.Job]:
    jobs: dict[str, singleton.Job] = {}
    if settings.channel_test_minutes:
        run = _counted(TEST_JOB, lambda: channel_checks.run_all_tests(probing))
        jobs[TEST_JOB] = singleton.every(settings.channel_test_minutes * 60, run, name=TEST_JOB)
    if settings.channel_update_minutes:
        run = _counted(BALANCE_JOB, lambda: channel_checks.update_all_balances(probing))
        interval = settings.channel_update_minutes * 60
        jobs[BALANCE_JOB] = singleton.every(interval, run, name=BALANCE_JOB)
    return jobs


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Start the scheduled channel jobs (none unless a frequency is set); stopped on exit."""
    if settings.credential is None or not (
        settings.channel_test_minutes or settings.channel_update_minutes
    ):
        yield []
        return
    channel = open_channel(settings.accounts_addr, settings.credential)
    session = open_session(allow_private=settings.channel_private_addresses)
    probing = channel_checks.Probing(
        accounts=accounts_pb2_grpc.AccountsServiceStub(channel),
        session=session,
        timeout=settings.channel_probe_timeout,
        rpc_timeout=RPC_TIMEOUT,
        allow_private=settings.channel_private_addresses,
        pause=settings.polling_interval,
    )
    tasks = [
        asyncio.create_task(singleton.run_in_one_replica(settings.database_url.value, name, job))
        for name, job in _jobs(settings, probing).items()
    ]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
        await channel.close(grace=2.0)
