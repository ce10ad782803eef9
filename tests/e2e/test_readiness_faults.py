"""The tasks worker's /readyz follows its dependencies: not ready while NATS is away, ready
again once it is back, without a restart (what a Kubernetes readiness probe relies on)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from services.cli.supervisor import Child
from tests.support.fault_kit import all_ready
from tests.support.infra import Infra
from tests.support.world import eventually

pytestmark = pytest.mark.e2e


async def readiness(base: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        reply = await client.get("/readyz")
    return reply.status_code, reply.json()


async def test_tasks_is_not_ready_while_nats_is_down(
    tasks_service: Child, infra: Infra, web_url: str
) -> None:
    assert infra.nats is not None
    nats_server = infra.nats
    base = tasks_service.spec.http_url
    assert await readiness(base) == (200, {"status": "ready"})
    try:
        await asyncio.to_thread(nats_server.stop)

        async def not_ready() -> dict[str, Any] | None:
            status, body = await readiness(base)
            return body if status == 503 else None

        body = await eventually(not_ready, within=20)
        assert body["status"] == "not ready" and "nats" in body["waiting_for"]
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            alive = await client.get("/healthz")
        assert alive.status_code == 200  # alive all along: no restart wanted
    finally:
        if nats_server.proc is None or nats_server.proc.poll() is not None:
            await asyncio.to_thread(nats_server.start)

    async def ready_again() -> bool | None:
        return True if (await readiness(base))[0] == 200 else None

    await eventually(ready_again, within=30)
    assert tasks_service.restarts == 0 and tasks_service.exited() is None
    await all_ready(web_url)  # accounts and billing reconnected too
