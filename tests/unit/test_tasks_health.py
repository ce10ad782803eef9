"""The tasks worker's probe answers, over a real loopback HTTP server (aiohttp's test server)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from services.tasks.health import build_app


async def _ready() -> list[str]:
    return []


async def _waiting() -> list[str]:
    return ["nats", "postgresql"]


async def test_a_dead_pull_loop_fails_liveness_and_missing_dependencies_fail_readiness() -> None:
    async with TestClient(TestServer(build_app(_waiting, lambda: False))) as client:
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
        assert alive.status == 503
        assert ready.status == 503
        assert await ready.json() == {"status": "not ready", "waiting_for": ["nats", "postgresql"]}
    async with TestClient(TestServer(build_app(_ready, lambda: True))) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 200
