"""Channel management for admins (stored and validated by accounts)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.shared.numbers import ascii_int
from services.web.api import ROLE_ADMIN, ROLE_ROOT, ApiError, Call, endpoint
from services.web.convert import apply_channel_body, channel_item, paged, split_list


def _small_int(text: str) -> bool:
    """A filter value that is an ASCII integer an int32 field can hold (others are ignored,
    as unknown types or statuses would match nothing)."""
    return ascii_int(text, max_digits=9, signed=True) is not None


async def _list(call: Call) -> dict[str, Any]:
    params = call.request.query_params
    page, size = call.page()
    types = [int(t) for t in split_list(params.get("types", "")) if _small_int(t)]
    statuses = [int(s) for s in split_list(params.get("statuses", "")) if _small_int(s)]
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
    await _with_usage(call, items)
    return paged(items, reply.total, page, size)


async def _with_usage(call: Call, items: list[dict[str, Any]]) -> None:
    """used_quota is counted by billing at settlement; accounts only stores the channel."""
    if not items:
        return
    reply = await call.deps.billing.GetChannelUsage(
        billing_pb2.GetChannelUsageRequest(channel_ids=[item["id"] for item in items]),
        timeout=call.deps.timeout,
    )
    served = {usage.channel_id: usage for usage in reply.usage}
    for item in items:
        usage = served.get(item["id"])
        item["used_quota"] = usage.used_quota if usage else 0
        item["request_count"] = usage.request_count if usage else 0


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
    item = channel_item(channel, with_key=True)
    await _with_usage(call, [item])
    return item


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


@endpoint(ROLE_ROOT)
async def reveal_key(call: Call) -> dict[str, Any]:
    """Root only; every reveal is written to the audit log (who, when, which channel/key)."""
    reply = await call.deps.accounts.RevealChannelKey(
        accounts_pb2.RevealChannelKeyRequest(
            actor_id=call.user_id,
            channel_id=call.path_int("id"),
            key_id=call.query_int("key_id"),
        ),
        timeout=call.deps.timeout,
    )
    return {"key": reply.key}


def json_object_text(name: str, value: Any) -> str:
    """A JSON object given as an object or as text, as text ('' stays '')."""
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    text = str(value or "")
    if text.strip():
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ApiError(f"{name} must be a JSON object") from exc
        if not isinstance(parsed, dict):
            raise ApiError(f"{name} must be a JSON object")
    return text


def _ids(call: Call, body: dict[str, Any]) -> list[int]:
    raw = body.get("ids")
    if not isinstance(raw, list) or not raw:
        raise ApiError("ids must be a non-empty list of channel ids")
    return [call.body_int({"id": value}, "id") for value in raw]


@endpoint(ROLE_ADMIN)
async def batch_delete(call: Call) -> int:
    ids = _ids(call, await call.json())
    reply = await call.deps.accounts.DeleteChannels(
        accounts_pb2.DeleteChannelsRequest(actor_id=call.user_id, ids=ids),
        timeout=call.deps.timeout,
    )
    return reply.deleted


@endpoint(ROLE_ADMIN)
async def batch_tag(call: Call) -> int:
    body = await call.json()
    reply = await call.deps.accounts.SetChannelsTag(
        accounts_pb2.SetChannelsTagRequest(
            actor_id=call.user_id, ids=_ids(call, body), tag=str(body.get("tag") or "")
        ),
        timeout=call.deps.timeout,
    )
    return reply.changed


def _tag_of(body: dict[str, Any]) -> str:
    tag = str(body.get("tag") or "").strip()
    if not tag:
        raise ApiError("tag is required")
    return tag


@endpoint(ROLE_ADMIN)
async def edit_tag(call: Call) -> int:
    body = await call.json()
    request = accounts_pb2.UpdateChannelsByTagRequest(actor_id=call.user_id, tag=_tag_of(body))
    if body.get("new_tag") is not None:
        request.new_tag = str(body["new_tag"])
    for name in ("priority", "weight"):
        if body.get(name) is not None and body.get(name) != "":
            setattr(request, name, call.body_int(body, name))
    if body.get("model_mapping") is not None:
        request.model_mapping = json_object_text("model_mapping", body["model_mapping"])
    request.models.extend(split_list(body.get("models")))
    request.groups.extend(split_list(body.get("groups", body.get("group"))))
    reply = await call.deps.accounts.UpdateChannelsByTag(request, timeout=call.deps.timeout)
    return reply.changed


async def _tag_status(call: Call, enabled: bool) -> int:
    body = await call.json()
    reply = await call.deps.accounts.SetChannelsStatusByTag(
        accounts_pb2.SetChannelsStatusByTagRequest(
            actor_id=call.user_id, tag=_tag_of(body), enabled=enabled
        ),
        timeout=call.deps.timeout,
    )
    return reply.changed


@endpoint(ROLE_ADMIN)
async def disable_tag(call: Call) -> int:
    return await _tag_status(call, False)


@endpoint(ROLE_ADMIN)
async def enable_tag(call: Call) -> int:
    return await _tag_status(call, True)


@endpoint(ROLE_ADMIN)
async def fix_abilities(call: Call) -> int:
    reply = await call.deps.accounts.FixAbilities(
        accounts_pb2.FixAbilitiesRequest(actor_id=call.user_id), timeout=call.deps.timeout
    )
    return reply.changed


@endpoint(ROLE_ADMIN)
async def list_tags(call: Call) -> list[str]:
    reply = await call.deps.accounts.ListChannelTags(
        accounts_pb2.ListChannelTagsRequest(), timeout=call.deps.timeout
    )
    return list(reply.tags)


ROUTES = [
    Route("/api/channel/tags", list_tags, methods=["GET"]),
    Route("/api/channel/tag", edit_tag, methods=["PUT"]),
    Route("/api/channel/tag/disabled", disable_tag, methods=["POST"]),
    Route("/api/channel/tag/enabled", enable_tag, methods=["POST"]),
    Route("/api/channel/batch", batch_delete, methods=["POST"]),
    Route("/api/channel/batch/tag", batch_tag, methods=["POST"]),
    Route("/api/channel/fix", fix_abilities, methods=["POST"]),
    Route("/api/channel/{id:int}/key", reveal_key, methods=["GET"]),
    Route("/api/channel/", list_channels, methods=["GET"]),
    Route("/api/channel/search", search_channels, methods=["GET"]),
    Route("/api/channel/", create_channel, methods=["POST"]),
    Route("/api/channel/", update_channel, methods=["PUT"]),
    Route("/api/channel/disabled", delete_disabled_channels, methods=["DELETE"]),
    Route("/api/channel/{id:int}", get_channel, methods=["GET"]),
    Route("/api/channel/{id:int}", delete_channel, methods=["DELETE"]),
]
