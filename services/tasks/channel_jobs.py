"""Scheduled channel health (upstream `main.go`: AutomaticallyTestChannels every
CHANNEL_TEST_FREQUENCY minutes, AutomaticallyUpdateChannels every CHANNEL_UPDATE_FREQUENCY
minutes): each runs in exactly one tasks replica at a time (services/shared/singleton.py) and
asks the relays to probe each channel (services/shared/channel_probes.py), as the console's
manual runs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from nats.aio.client import Client as NATS
from veloera.accounts.v1 import accounts_pb2_grpc

from services.shared import channel_probes, singleton
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


def _jobs(
    settings: Settings,
    client: channel_probes.ProbeClient,
    accounts: accounts_pb2_grpc.AccountsServiceAsyncStub,
) -> dict[str, singleton.Job]:
    jobs: dict[str, singleton.Job] = {}
    pause = settings.polling_interval
    if settings.channel_test_minutes:
        tests = channel_probes.run_all_tests
        run = _counted(TEST_JOB, lambda: tests(client, accounts, RPC_TIMEOUT, pause))
        jobs[TEST_JOB] = singleton.every(settings.channel_test_minutes * 60, run, name=TEST_JOB)
    if settings.channel_update_minutes:
        balances = channel_probes.update_all_balances
        run = _counted(BALANCE_JOB, lambda: balances(client, accounts, RPC_TIMEOUT, pause))
        interval = settings.channel_update_minutes * 60
        jobs[BALANCE_JOB] = singleton.every(interval, run, name=BALANCE_JOB)
    return jobs


@contextlib.asynccontextmanager
async def running(settings: Settings, nc: NATS) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Start the scheduled channel jobs (none unless a frequency is set); stopped on exit."""
    if settings.credential is None or not (
        settings.channel_test_minutes or settings.channel_update_minutes
    ):
        yield []
        return
    channel = open_channel(settings.accounts_addr, settings.credential)
    accounts = accounts_pb2_grpc.AccountsServiceStub(channel)
    client = channel_probes.ProbeClient(lambda: nc, settings.channel_probe_timeout)
    tasks = [
        asyncio.create_task(singleton.run_in_one_replica(settings.database_url.value, name, job))
        for name, job in _jobs(settings, client, accounts).items()
    ]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close(grace=2.0)
