"""A background job runs in exactly one replica at a time, and in another one as soon as its
replica dies or loses the database (services/shared/singleton.py, real PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest

from services.shared import singleton
from tests.support.infra import Infra
from tests.support.world import eventually

pytestmark = pytest.mark.integration

RETRY = 0.2


@dataclass
class Replica:
    """One contender: records when its job starts and when it is stopped."""

    name: str
    started: int = 0
    stopped: int = 0
    running: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def job(self) -> None:
        self.started += 1
        self.running = True
        try:
            await asyncio.Event().wait()  # a long-running job
        finally:
            self.running = False
            self.stopped += 1


JOB_NAME = f"test job {uuid.uuid4().hex[:12]}"


@pytest.fixture
async def replicas(infra: Infra) -> AsyncIterator[list[Replica]]:
    job_name = f"{JOB_NAME} {uuid.uuid4().hex[:8]}"
    found = [Replica("a"), Replica("b"), Replica("c")]
    for replica in found:
        replica.task = asyncio.create_task(
            singleton.run_in_one_replica(infra.database_url, job_name, replica.job, retry=RETRY)
        )
    try:
        yield found
    finally:
        for replica in found:
            assert replica.task is not None
            replica.task.cancel()
        await asyncio.gather(*(r.task for r in found if r.task), return_exceptions=True)


def _leader(replicas: list[Replica]) -> Replica | None:
    running = [r for r in replicas if r.running]
    assert len(running) <= 1, [r.name for r in running]
    return running[0] if running else None


async def _settled(replicas: list[Replica]) -> Replica:
    """The one replica running the job, after the others had several chances to take it."""
    leader = await eventually(lambda: _async(_leader(replicas)))
    for _ in range(10):
        await asyncio.sleep(RETRY)
        assert _leader(replicas) is leader
    assert [r.started for r in replicas if r is not leader] == [0, 0]
    return leader


async def _async(value: Replica | None) -> Replica | None:
    return value


async def test_exactly_one_replica_runs_the_job(replicas: list[Replica]) -> None:
    leader = await _settled(replicas)
    assert [r.started for r in replicas].count(1) == 1 and leader.started == 1


async def test_another_replica_takes_over_when_the_runner_stops(replicas: list[Replica]) -> None:
    first = await _settled(replicas)
    assert first.task is not None
    first.task.cancel()  # the replica shuts down: its connection closes, the lock with it
    await asyncio.gather(first.task, return_exceptions=True)
    assert first.stopped == 1
    second = await eventually(lambda: _async(_leader(replicas)))
    assert second is not first


async def test_a_runner_that_loses_the_database_stops_and_another_takes_over(
    replicas: list[Replica], infra: Infra
) -> None:
    first = await _settled(replicas)
    conn = await asyncpg.connect(infra.database_url)
    try:  # kill the leader's session (a network cut or a database failover looks the same)
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name LIKE $1 AND pid IN"
            " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
            f"veloera-singleton-{JOB_NAME}%",
        )
    finally:
        await conn.close()
    assert killed == 1

    async def moved() -> Replica | None:
        leader = [r for r in replicas if r.running]
        return leader[0] if first.stopped == 1 and leader and leader[0] is not first else None

    second = await eventually(moved)
    assert second is not first and first.task is not None and not first.task.done()
