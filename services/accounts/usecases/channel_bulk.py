"""Use cases for bulk channel edits (by tag, tagging, fix abilities) and the audited key reveal."""

from __future__ import annotations

import dataclasses
from typing import Any

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import channel_bulk_repo, channel_rules, channels_repo, events, roles
from services.accounts.deps import Deps, load_actor, now
from services.accounts.records import UserRecord
from services.accounts.types import Conn
from services.accounts.usecases.channels import ENABLED, rebuild_abilities
from services.shared.errors import InvalidArgument, NotFound
from services.shared.statuses import ChannelStatus

MANUALLY_DISABLED = ChannelStatus.MANUALLY_DISABLED


async def reveal_channel_key(
    deps: Deps, request: pb.RevealChannelKeyRequest
) -> pb.RevealChannelKeyResponse:
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        roles.require_root(actor.role)
        if await channels_repo.get_channel(conn, channel_id=request.channel_id) is None:
            raise NotFound("channel not found")
        keys = await channels_repo.channel_keys(conn, channel_id=request.channel_id)
        if request.key_id:
            keys = [row for row in keys if row.id == request.key_id]
            if not keys:
                raise NotFound("this channel has no such key")
        await channel_bulk_repo.record_reveal(
            conn, actor_id=actor.id, channel_id=request.channel_id,
            key_id=request.key_id, now=now(),
        )  # fmt: skip
    plain = [deps.box.decrypt(row.key_enc) for row in keys]
    return pb.RevealChannelKeyResponse(key="\n".join(plain))


async def update_channels_by_tag(
    deps: Deps, request: pb.UpdateChannelsByTagRequest
) -> pb.ChannelsChanged:
    tag = _tag(request.tag)
    changes = _tag_changes(request)
    if not changes:
        raise InvalidArgument("nothing to change")
    async with deps.pool.acquire() as conn, conn.transaction():
        await _require_admin(deps, conn, request.actor_id)
        rows = await channel_bulk_repo.channels_by_tag(conn, tag=tag)
        ids = []
        for row in rows:
            fields = dataclasses.replace(channel_bulk_repo.fields_of(row), **changes)
            updated = await channels_repo.update_channel(conn, channel_id=row.id, fields=fields)
            assert updated is not None
            await rebuild_abilities(conn, updated)
            ids.append(row.id)
        version = await channels_repo.bump_version(conn, channel_ids=ids) if ids else 0
    return await _changed(deps, ids, version)


async def set_channels_status_by_tag(
    deps: Deps, request: pb.SetChannelsStatusByTagRequest
) -> pb.ChannelsChanged:
    tag = _tag(request.tag)
    status = ENABLED if request.enabled else MANUALLY_DISABLED
    async with deps.pool.acquire() as conn, conn.transaction():
        await _require_admin(deps, conn, request.actor_id)
        ids = []
        for row in await channel_bulk_repo.channels_by_tag(conn, tag=tag):
            if row.status == status:
                continue
            await channels_repo.set_channel_status(
                conn, channel_id=row.id, status=status, reason="", now=now()
            )
            if status == ENABLED:
                await channels_repo.reenable_keys(conn, channel_id=row.id)
            ids.append(row.id)
        version = await channels_repo.bump_version(conn, channel_ids=ids) if ids else 0
    return await _changed(deps, ids, version)


async def set_channels_tag(deps: Deps, request: pb.SetChannelsTagRequest) -> pb.ChannelsChanged:
    if not request.ids:
        raise InvalidArgument("no channel ids given")
    tag = request.tag.strip()
    if len(tag) > channel_rules.MAX_NAME_LENGTH:
        raise InvalidArgument("tag is too long")
    async with deps.pool.acquire() as conn, conn.transaction():
        await _require_admin(deps, conn, request.actor_id)
        ids = await channel_bulk_repo.set_tag(conn, ids=list(request.ids), tag=tag)
        version = await channels_repo.bump_version(conn, channel_ids=ids) if ids else 0
    return await _changed(deps, ids, version)


async def fix_abilities(deps: Deps, request: pb.FixAbilitiesRequest) -> pb.ChannelsChanged:
    async with deps.pool.acquire() as conn, conn.transaction():
        await _require_admin(deps, conn, request.actor_id)
        rows = await channel_bulk_repo.all_channels_for_update(conn)
        await channel_bulk_repo.delete_orphan_abilities(conn)
        for row in rows:
            await rebuild_abilities(conn, row)
        version = await channels_repo.bump_version(conn, everything=True)
    return await _changed(deps, [row.id for row in rows], version, always=True)


async def list_channel_tags(
    deps: Deps, request: pb.ListChannelTagsRequest
) -> pb.ListChannelTagsResponse:
    async with deps.pool.acquire() as conn:
        return pb.ListChannelTagsResponse(tags=await channel_bulk_repo.tags(conn))


async def _require_admin(deps: Deps, conn: Conn, actor_id: int) -> UserRecord:
    actor = await load_actor(conn, actor_id)
    roles.require_admin(actor.role)
    return actor


async def _changed(
    deps: Deps, ids: list[int], version: int, *, always: bool = False
) -> pb.ChannelsChanged:
    if ids or always:
        await deps.events.changed(events.CHANNEL, ids=ids, routing_version=version)
    return pb.ChannelsChanged(changed=len(ids))


def _tag(tag: str) -> str:
    tag = tag.strip()
    if not tag:
        raise InvalidArgument("tag is required")
    return tag


def _tag_changes(request: pb.UpdateChannelsByTagRequest) -> dict[str, Any]:
    """The validated fields a by-tag edit replaces on every channel of the tag."""
    changes: dict[str, Any] = {}
    if request.HasField("new_tag"):
        changes["tag"] = request.new_tag.strip()
    if request.HasField("priority"):
        changes["priority"] = request.priority
    if request.HasField("weight"):
        if request.weight < 0:
            raise InvalidArgument("weight must not be negative")
        changes["weight"] = request.weight
    if request.HasField("model_mapping"):
        changes["model_mapping"] = channel_rules.check_model_mapping(request.model_mapping)
    if request.models:
        changes["models"] = channel_rules.clean_list("models", list(request.models))
    if request.groups:
        changes["groups"] = channel_rules.clean_list("groups", list(request.groups))
    return changes
