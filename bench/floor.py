"""`python -m bench.floor`: what the relay's frameworks cost with none of our code.

A uvicorn + Starlette app with the relay's routes, run in its own process like the relay, is
driven by the bench's load generator at one concurrency and its CPU per request printed:
`plain` answers a fixed JSON body (uvicorn + Starlette alone), `proxy` forwards each request to
the fake upstream through one aiohttp session (the relay's transport), `proxy-httpx` does the
same through httpx (what the relay used before). The relay's own CPU per request minus the
`proxy` floor is what our code (auth, routing, leases, metering, settlement) adds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import uvloop

from bench.load import LoadPlan, Target, chat_body, run_load
from bench.stack import MODEL, FakeProcess
from services.cli.infra import free_port, wait_port

REPLY = b'{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1}}'
MODES = ("plain", "proxy", "proxy-httpx")


def serve(mode: str, port: int, upstream: str) -> None:
    """The floor app (run in the child process)."""
    import aiohttp
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from services.relay.endpoints import BY_PATH
    from services.shared.gctune import settle_after_startup

    clients: dict[str, Any] = {}
    headers = {"Content-Type": "application/json", "Authorization": "Bearer floor"}

    async def handle(request: Request) -> Response:
        body = await request.body()
        if mode == "proxy":
            async with clients["aiohttp"].post(upstream, data=body, headers=headers) as reply:
                return Response(await reply.read(), media_type="application/json")
        if mode == "proxy-httpx":
            answer = await clients["httpx"].post(upstream, content=body, headers=headers)
            return Response(answer.content, media_type="application/json")
        return Response(REPLY, media_type="application/json")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        clients["aiohttp"] = aiohttp.ClientSession()
        clients["httpx"] = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=4096, max_keepalive_connections=1024)
        )
        settle_after_startup()  # the relay's GC settings
        yield
        await clients["aiohttp"].close()
        await clients["httpx"].aclose()

    routes = [
        Route(f"{prefix}/v1{path}", handle, methods=["POST"])
        for prefix in ("", "/hf")
        for path in BY_PATH
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_config=None, access_log=False, proxy_headers=False)  # fmt: skip


def spawn(mode: str, port: int, upstream: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-m", "bench.floor", "--serve", mode,
                              "--port", str(port), "--upstream", upstream])  # fmt: skip
    wait_port("127.0.0.1", port, 15.0, child)
    return child


async def measure(mode: str, fake: FakeProcess, concurrency: int, seconds: float) -> str:
    port = free_port()
    child = spawn(mode, port, f"{fake.url}/v1/chat/completions")
    try:
        target = Target.from_url(f"http://127.0.0.1:{port}/v1/chat/completions", chat_body(MODEL))
        await run_load(target, LoadPlan(concurrency=concurrency, duration=1.0))
        process = psutil.Process(child.pid)
        before = process.cpu_times()
        result = await run_load(target, LoadPlan(concurrency=concurrency, duration=seconds))
        after = process.cpu_times()
    finally:
        child.terminate()
        child.wait(10)
    cpu = after.user - before.user + after.system - before.system
    per_request = cpu * 1000 / max(result.ok, 1)
    return (f"{mode:12s} c={concurrency}: {result.rps:8.0f} rps, "
            f"{per_request:.3f} ms CPU per request, {result.error_count} errors")  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    fake = FakeProcess(free_port(), [])
    fake.start(Path("/dev/null"))
    try:
        for mode in MODES:
            print(await measure(mode, fake, args.concurrency, args.duration), flush=True)
    finally:
        fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.upstream)
        return
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
