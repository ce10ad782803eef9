"""The gRPC health status follows the dependency probes: one failed round on a busy host is
not an outage, two are; the first round where every probe answers serves again."""

from __future__ import annotations

import asyncio
import contextlib

from grpc_health.v1 import health, health_pb2

from services.shared.grpcutil import follow_dependencies

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class RecordingHealth(health.aio.HealthServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[tuple[str, int]] = []

    async def set(self, service: str, status: int) -> None:
        self.changes.append((service, status))
        await super().set(service, status)


async def _follow(rounds: list[bool]) -> list[tuple[str, int]]:
    """Run the follower over one probe answering `rounds` in turn; the changes it made."""
    servicer = RecordingHealth()
    answers = iter(rounds)
    done = asyncio.Event()

    async def probe() -> bool:
        answer = next(answers, None)
        if answer is None:
            done.set()
            await asyncio.Event().wait()  # park until cancelled
        return bool(answer)

    task = asyncio.create_task(
        follow_dependencies(servicer, ["svc"], {"postgres": probe}, interval=0)
    )
    await done.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return servicer.changes


async def test_one_failed_round_changes_nothing() -> None:
    assert await _follow([True, False, True, False, True]) == []


async def test_two_failed_rounds_stop_serving_and_one_good_round_serves_again() -> None:
    changes = await _follow([True, False, False, False, True, True])
    assert changes == [("", NOT_SERVING), ("svc", NOT_SERVING), ("", SERVING), ("svc", SERVING)]


async def test_a_raising_probe_counts_as_failing() -> None:
    servicer = RecordingHealth()
    calls = 0
    third_round = asyncio.Event()

    async def broken() -> bool:
        nonlocal calls
        calls += 1
        if calls > 2:
            third_round.set()
            await asyncio.Event().wait()
        raise ConnectionRefusedError

    task = asyncio.create_task(follow_dependencies(servicer, ["svc"], {"nats": broken}, interval=0))
    await third_round.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert ("", NOT_SERVING) in servicer.changes
