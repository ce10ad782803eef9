"""One POST to a task platform's upstream (Midjourney proxy or Suno), shared by the submit
routes (routes/tasks.py) and the poll responder (task_poll.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson

from services.relay.routing.table import ChannelInfo
from services.relay.tasks import protocol as tp
from services.relay.upstream.http import UPSTREAM_ERRORS, Sessions, read_timeout


class TaskError(Exception):
    """An answer in the platform's error shape (Midjourney: code/description)."""

    def __init__(self, status: int, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


@contextlib.contextmanager
def _upstream_errors() -> Iterator[None]:
    """Connection failures and timeouts as the platform's 502 and 504."""
    try:
        yield
    except TimeoutError:
        raise TaskError(504, tp.MJ_ERROR_UNKNOWN, "upstream timed out") from None
    except (ValueError, *UPSTREAM_ERRORS) as exc:
        raise TaskError(
            502, tp.MJ_ERROR_UNKNOWN, f"upstream connection failed: {type(exc).__name__}"
        ) from None


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _exchange(
    sessions: Sessions,
    channel: ChannelInfo,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    timeout: float,
    data: bytes | None = None,
) -> tuple[int, bytes]:
    """One request through the channel's proxy, its whole answer read within `timeout`."""
    with _upstream_errors():
        session, proxy = sessions.route(channel.setting.proxy)
        async with session.request(
            method,
            channel.base_url.rstrip("/") + path,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            proxy=proxy or None,
            allow_redirects=False,
        ) as response:
            return response.status, await response.read()


async def task_upstream_post(
    sessions: Sessions,
    channel: ChannelInfo,
    path: str,
    body: dict[str, Any],
    *,
    key: str,
    midjourney: bool,
    timeout: float,
) -> tuple[int, bytes]:
    """One POST to a task platform: midjourney-proxy takes the key as `mj-api-secret`, Suno
    as a bearer token (upstream `relay/relay-mj.go`, `relay/channel/task/suno/adaptor.go`)."""
    headers = {"mj-api-secret": key} if midjourney else _bearer(key)
    headers["Content-Type"] = "application/json"
    return await _exchange(
        sessions, channel, "POST", path, headers=headers, timeout=timeout, data=orjson.dumps(body)
    )


async def task_upstream_get(
    sessions: Sessions, channel: ChannelInfo, path: str, *, key: str, timeout: float
) -> tuple[int, bytes]:
    """One GET with the key as a bearer token (OpenAI's video API)."""
    return await _exchange(sessions, channel, "GET", path, headers=_bearer(key), timeout=timeout)


async def open_task_upstream_get(
    sessions: Sessions,
    channel: ChannelInfo,
    path: str,
    *,
    key: str,
    idle_timeout: float,
) -> aiohttp.ClientResponse:
    """The open 200 answer of a GET (body not read: the caller streams it and releases it);
    anything else raises TaskError. `idle_timeout` bounds each wait for data, not the whole
    download."""
    with _upstream_errors():
        session, proxy = sessions.route(channel.setting.proxy)
        response = await session.get(
            channel.base_url.rstrip("/") + path,
            headers=_bearer(key),
            timeout=read_timeout(idle_timeout),
            proxy=proxy or None,
            allow_redirects=False,
        )
    if response.status != 200:
        response.release()
        raise TaskError(502, tp.MJ_ERROR_UNKNOWN, f"upstream answered {response.status}")
    return response
