"""The tasks worker's HTTP port: `/healthz` (alive), `/readyz` (can work), `/metrics`.

The worker serves no traffic, so probes need their own answers: `/healthz` says the event loop
runs and the pull loop has not died (a dead loop needs a restart, so liveness fails then);
`/readyz` says NATS is connected, PostgreSQL answers and (with UPDATE_TASK on) the pull loop
is running. Anything else is 404, so a probe never mistakes the metrics page for health.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

_DB_PING_SECONDS = 2.0

# Awaited on each /readyz: the names of what is not ready (empty: ready).
Readiness = Callable[[], Awaitable[list[str]]]


async def database_answers(pool: asyncpg.Pool) -> bool:
    """One `SELECT 1` within a short timeout: a stuck or unreachable server is not ready."""
    try:
        async with asyncio.timeout(_DB_PING_SECONDS), pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


def build_app(readiness: Readiness, alive: Callable[[], bool]) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        if not alive():
            return web.json_response({"status": "pull loop stopped"}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        missing = await readiness()
        if missing:
            return web.json_response({"status": "not ready", "waiting_for": missing}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(
    readiness: Readiness, alive: Callable[[], bool], host: str, port: int
) -> web.AppRunner:
    """Listen on host:port (port 0 or less: no server); the caller cleans the runner up."""
    runner = web.AppRunner(build_app(readiness, alive), access_log=None)
    await runner.setup()
    if port > 0:
        await web.TCPSite(runner, host, port).start()
    return runner
