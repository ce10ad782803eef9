"""Channel management for admins (stored and validated by accounts)."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2

from services.web.api import ROLE_ADMIN, ApiError, Call, endpoint
from services.web.convert import apply_channel_body, channel_item, paged, split_list


async def _list(call: Call) -> dict[str, Any]:
    params = call.request.query_params
    page, size = call.page()
    types = [int(t) for t in split_list(params.get("types", "")) if t.lstrip("-").isdigit()]
    statuses = [int(s) for s in split_list(params.get("statuses", "")) if s.isdigit()]
    reply = await call.deps.accounts.ListChannels(
        accounts_pb2.ListChannelsRequest(
            page=page,
            page_size=size,
            keyword=params.get("keyword", ""),
            group=params.get("group", ""),
            model=params.get("model", ""),
            types=types,
            statuses=statuses,  # type: ignore[arg-type]
            tags=split_list(params.get("tags", "")),
        ),
        timeout=call.deps.timeout,
    )
    items = [channel_item(c, with_key=False) for c in reply.channels]
    return paged(items, reply.total, page, size)


@endpoint(ROLE_ADMIN)
async def list_channels(call: Call) -> dict[str, Any]:
    return await _list(call)


@endpoint(ROLE_ADMIN)
async def search_channels(call: Call) -> dict[str, Any]:
    return await _list(call)


@endpoint(ROLE_ADMIN)
async def get_channel(call: Call) -> dict[str, Any]:
    channel = await call.deps.accounts.GetChannel(
        accounts_pb2.GetChannelRequest(id=call.path_int("id")), timeout=call.deps.timeout
    )
    return channel_item(channel, with_key=True)


async def _save(call: Call, channel: accounts_pb2.Channel) -> dict[str, Any]:
    saved = await call.deps.accounts.SaveChannel(
        accounts_pb2.SaveChannelRequest(actor_id=call.user_id, channel=channel),
        timeout=call.deps.timeout,
    )
    return channel_item(saved, with_key=False)


@endpoint(ROLE_ADMIN)
async def create_channel(call: Call) -> dict[str, Any]:
    body = await call.json()
    channel = accounts_pb2.Channel(
        status=accounts_pb2.CHANNEL_STATUS_ENABLED, auto_ban=True, groups=["default"]
    )
    apply_channel_body(channel, body)
    channel.id = 0
    if not channel.name.strip():
        raise ApiError("the channel name is required")
    if not channel.key.strip():
        raise ApiError("the channel key is required")
    if not channel.models:
        raise ApiError("the channel needs at least one model")
    return await _save(call, channel)


@endpoint(ROLE_ADMIN)
async def update_channel(call: Call) -> dict[str, Any]:
    body = await call.json()
    channel_id = call.body_int(body, "id")
    if channel_id <= 0:
        raise ApiError("id is required")
    channel = await call.deps.accounts.GetChannel(
        accounts_pb2.GetChannelRequest(id=channel_id), timeout=call.deps.timeout
    )
    channel.key = ""  # empty keeps the stored keys unless the body brings new ones
    channel.ClearField("keys")
    apply_channel_body(channel, body)
    channel.id = channel_id
    return await _save(call, channel)


@endpoint(ROLE_ADMIN)
async def delete_channel(call: Call) -> None:
    reply = await call.deps.accounts.DeleteChannels(
        accounts_pb2.DeleteChannelsRequest(actor_id=call.user_id, ids=[call.path_int("id")]),
        timeout=call.deps.timeout,
    )
    if reply.deleted == 0:
        raise ApiError("channel not found")


@endpoint(ROLE_ADMIN)
async def delete_disabled_channels(call: Call) -> int:
    reply = await call.deps.accounts.DeleteChannels(
        accounts_pb2.DeleteChannelsRequest(actor_id=call.user_id, all_disabled=True),
        timeout=call.deps.timeout,
    )
    return reply.deleted


ROUTES = [
    Route("/api/channel/", list_channels, methods=["GET"]),
    Route("/api/channel/search", search_channels, methods=["GET"]),
    Route("/api/channel/", create_channel, methods=["POST"]),
    Route("/api/channel/", update_channel, methods=["PUT"]),
    Route("/api/channel/disabled", delete_disabled_channels, methods=["DELETE"]),
    Route("/api/channel/{id:int}", get_channel, methods=["GET"]),
    Route("/api/channel/{id:int}", delete_channel, methods=["DELETE"]),
]
