"""Channel tests, balance queries and upstream model lists for admins (upstream
`controller/channel-test.go`, `controller/channel-billing.go`, `controller/channel.go`).

A manual test or balance query runs here, through the same code the tasks service schedules
(services/relay/health/checks.py); accounts records the result and applies the auto-disable
and auto-enable rules. "Test all" and "update all balances" return at once and run in the
background, as upstream does (a second start while one runs in this process is refused).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2

from services.relay.health import checks as channel_checks
from services.relay.health import probe as channel_probe
from services.relay.health.probe import ProbeError
from services.web.api import ROLE_ADMIN, ApiError, Call, bad_request, endpoint, parse_int

logger = logging.getLogger(__name__)

MAX_KEY_INDEX = 10_000


def _probing(call: Call) -> channel_checks.Probing:
    deps = call.deps
    return channel_checks.Probing(
        accounts=deps.accounts,
        session=deps.probe_session,
        timeout=deps.settings.channel_probe_timeout,
        rpc_timeout=deps.timeout,
        allow_private=deps.settings.channel_private_addresses,
        pause=deps.settings.polling_interval,
    )


async def _channel(call: Call) -> accounts_pb2.Channel:
    channel_id = call.path_int("id")
    if channel_id <= 0:
        raise bad_request("the channel id must be a positive integer")
    try:
        return await channel_checks.load_channel(_probing(call), channel_id)
    except ProbeError as exc:
        raise ApiError(str(exc)) from None


def _key_index(call: Call) -> int | None:
    raw = call.request.query_params.get("key_index", "").strip()
    return None if raw == "" else parse_int(raw, "key_index", minimum=0, maximum=MAX_KEY_INDEX)


def _test_reply(outcome: channel_checks.ChannelTest) -> JSONResponse:
    failed = [r for r in outcome.results if not r.success]
    if failed:
        message = "; ".join(f"key #{r.key_index}: {r.message}" for r in failed)
    elif outcome.too_slow:
        message = f"response time {outcome.response_ms} ms is above ChannelDisableThreshold"
    else:
        message = ""
    return JSONResponse(
        {
            "success": outcome.success,
            "message": message,
            "time": outcome.response_ms / 1000,
            "data": {
                "model": outcome.model,
                "response_time": outcome.response_ms,
                "channel_disabled": outcome.disabled,
                "channel_enabled": outcome.enabled,
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
    channel = await _channel(call)
    model = call.request.query_params.get("model", "").strip()
    try:
        outcome = await channel_checks.run_channel_test(
            _probing(call), channel, model=model, key_index=_key_index(call)
        )
    except ProbeError as exc:
        raise ApiError(str(exc)) from None
    return _test_reply(outcome)


def _start(call: Call, name: str, job: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Run `job` in the background unless the same job already runs in this process."""
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
    probing = _probing(call)
    _start(call, "test", lambda: channel_checks.run_all_tests(probing))
    return "testing every channel in the background; refresh the list to see the results"


@endpoint(ROLE_ADMIN)
async def update_balance(call: Call) -> dict[str, Any]:
    channel = await _channel(call)
    try:
        balance, updated = await channel_checks.update_balance(_probing(call), channel)
    except ProbeError as exc:
        raise ApiError(str(exc)) from None
    return {"balance": balance, "balance_updated_time": updated}


@endpoint(ROLE_ADMIN)
async def update_all_balances(call: Call) -> str:
    probing = _probing(call)
    _start(call, "balance update", lambda: channel_checks.update_all_balances(probing))
    return "updating the balance of every enabled channel in the background"


async def _models(call: Call, channel: accounts_pb2.Channel) -> list[str]:
    deps = call.deps
    try:
        return await channel_probe.list_models(
            deps.probe_session, channel, timeout=deps.settings.channel_probe_timeout,
            allow_private=deps.settings.channel_private_addresses,
        )  # fmt: skip
    except ProbeError as exc:
        raise ApiError(str(exc)) from None


@endpoint(ROLE_ADMIN)
async def fetch_models(call: Call) -> list[str]:
    return await _models(call, await _channel(call))


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
    channel = accounts_pb2.Channel(type=channel_type, base_url=base_url.strip(), key=key)
    return await _models(call, channel)


ROUTES = [
    Route("/api/channel/test", test_all_channels, methods=["GET"]),
    Route("/api/channel/test/{id}", test_channel, methods=["GET"]),
    Route("/api/channel/update_balance", update_all_balances, methods=["GET"]),
    Route("/api/channel/update_balance/{id}", update_balance, methods=["GET"]),
    Route("/api/channel/fetch_models", fetch_models_unsaved, methods=["POST"]),
    Route("/api/channel/fetch_models/{id}", fetch_models, methods=["GET"]),
]
