"""Channel tests, balance queries and upstream model lists for admins (upstream
`controller/channel-test.go`, `controller/channel-billing.go`, `controller/channel.go`).

The relays make them (services/shared/channel_probes.py: CHANNEL_PROBE over NATS), as they do
for the tasks service's scheduled runs; accounts records the result and applies the
auto-disable and auto-enable rules. "Test all" and "update all balances" return at once and
run in the background, as upstream does (a second start while one runs in this process is
refused).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from veloera.relay.v1 import relay_pb2

from services.shared import channel_probes
from services.shared.channel_probes import ProbeFailed, ProbeUnavailable
from services.web.api import ROLE_ADMIN, ApiError, Call, bad_request, endpoint, parse_int

logger = logging.getLogger(__name__)

MAX_KEY_INDEX = 10_000
T = TypeVar("T")


async def _asked(probe: Coroutine[Any, Any, T]) -> T:
    """The relay's answer, or its refusal (or why no relay answered) for the admin to read."""
    try:
        return await probe
    except (ProbeFailed, ProbeUnavailable) as exc:
        raise ApiError(str(exc)) from None


def _channel_id(call: Call) -> int:
    channel_id = call.path_int("id")
    if channel_id <= 0:
        raise bad_request("the channel id must be a positive integer")
    return channel_id


def _key_index(call: Call) -> int | None:
    raw = call.request.query_params.get("key_index", "").strip()
    return None if raw == "" else parse_int(raw, "key_index", minimum=0, maximum=MAX_KEY_INDEX)


def _test_reply(outcome: relay_pb2.ChannelProbeResponse) -> JSONResponse:
    failed = [r for r in outcome.results if not r.success]
    response_ms = max((r.response_ms for r in outcome.results), default=0)
    if failed:
        message = "; ".join(f"key #{r.key_index}: {r.message}" for r in failed)
    elif outcome.too_slow:
        message = f"response time {response_ms} ms is above ChannelDisableThreshold"
    else:
        message = ""
    return JSONResponse(
        {
            "success": channel_probes.tested_ok(outcome),
            "message": message,
            "time": response_ms / 1000,
            "data": {
                "model": outcome.model,
                "response_time": response_ms,
                "channel_disabled": outcome.channel_disabled,
                "channel_enabled": outcome.channel_enabled,
                "keys": [
                    {
                        "index": r.key_index,
                        "success": r.success,
                        "response_time": r.response_ms,
                        "message": r.message,
                    }
                    for r in outcome.results
                ],
            },
        }
    )


@endpoint(ROLE_ADMIN)
async def test_channel(call: Call) -> JSONResponse:
    """One channel: the chosen model (or its test model), each key or `?key_index=`."""
    channel_id = _channel_id(call)
    model = call.request.query_params.get("model", "").strip()
    probe = call.deps.probes.test(channel_id, model=model, key_index=_key_index(call))
    return _test_reply(await _asked(probe))


def _start(call: Call, name: str, job: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Run `job` in the background unless the same job already runs in this process, or no
    relay can be asked (NATS is not connected: the admin hears it now, not in a log)."""
    if not call.deps.tasks.connected:
        raise ApiError("channel probes go to the relays over NATS: not connected")
    jobs = call.deps.background
    running = jobs.get(name)
    if running is not None and not running.done():
        raise ApiError("this job is already running; wait for it to finish")
    jobs[name] = asyncio.create_task(_logged(name, job()), name=f"channel-{name}")


async def stop_background(app: Starlette) -> None:
    """Cancel background jobs at shutdown."""
    jobs: dict[str, asyncio.Task[Any]] = app.state.deps.background
    for task in jobs.values():
        task.cancel()
    await asyncio.gather(*jobs.values(), return_exceptions=True)


async def _logged(name: str, job: Coroutine[Any, Any, int]) -> None:
    try:
        count = await job
    except Exception:
        logger.exception("channel %s failed", name)
        return
    logger.info("channel %s finished", name, extra={"channels": count})


@endpoint(ROLE_ADMIN)
async def test_all_channels(call: Call) -> str:
    deps = call.deps
    pause = deps.settings.polling_interval
    run = channel_probes.run_all_tests
    _start(call, "test", lambda: run(deps.probes, deps.accounts, deps.timeout, pause))
    return "testing every channel in the background; refresh the list to see the results"


@endpoint(ROLE_ADMIN)
async def update_balance(call: Call) -> dict[str, Any]:
    answer = await _asked(call.deps.probes.balance(_channel_id(call)))
    return {"balance": answer.balance, "balance_updated_time": answer.balance_updated_time}


@endpoint(ROLE_ADMIN)
async def update_all_balances(call: Call) -> str:
    deps = call.deps
    pause = deps.settings.polling_interval
    run = channel_probes.update_all_balances
    _start(call, "balance update", lambda: run(deps.probes, deps.accounts, deps.timeout, pause))
    return "updating the balance of every enabled channel in the background"


@endpoint(ROLE_ADMIN)
async def fetch_models(call: Call) -> list[str]:
    return await _asked(call.deps.probes.models(_channel_id(call)))


@endpoint(ROLE_ADMIN)
async def fetch_models_unsaved(call: Call) -> list[str]:
    """A channel being created: `{type, base_url, key}` (the first key is used)."""
    body = await call.json()
    channel_type = call.body_int(body, "type", 1, minimum=1, maximum=1000)
    base_url, key = body.get("base_url") or "", body.get("key") or ""
    if not isinstance(base_url, str) or not isinstance(key, str):
        raise bad_request("base_url and key must be text")
    if not key.strip():
        raise bad_request("key is required")
    if base_url.strip() and not base_url.strip().lower().startswith(("http://", "https://")):
        raise bad_request("base_url must be an http or https URL")
    probe = call.deps.probes.unsaved_models(channel_type, base_url.strip(), key)
    return await _asked(probe)


ROUTES = [
    Route("/api/channel/test", test_all_channels, methods=["GET"]),
    Route("/api/channel/test/{id}", test_channel, methods=["GET"]),
    Route("/api/channel/update_balance", update_all_balances, methods=["GET"]),
    Route("/api/channel/update_balance/{id}", update_balance, methods=["GET"]),
    Route("/api/channel/fetch_models", fetch_models_unsaved, methods=["POST"]),
    Route("/api/channel/fetch_models/{id}", fetch_models, methods=["GET"]),
]
