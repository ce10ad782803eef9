"""Use cases for channels, their keys and the abilities index, plus auto-disable reports."""

from __future__ import annotations

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import channel_rules, channel_types, channels_repo, convert, events, roles
from services.accounts.deps import Deps, load_actor, now, paging
from services.accounts.metrics import CHANNELS_AUTO_DISABLED, KEYS_AUTO_DISABLED
from services.accounts.records import ChannelFields, ChannelKeyRecord, ChannelRecord
from services.accounts.types import Conn
from services.shared.crypto import SecretBox, mask_key
from services.shared.errors import InvalidArgument, NotFound, PermissionDenied
from services.shared.statuses import ChannelStatus

ENABLED = ChannelStatus.ENABLED
AUTO_DISABLED = ChannelStatus.AUTO_DISABLED
MAX_ERROR_LENGTH = 500


def channel_fields(
    channel: pb.Channel, *, status: int, allow_private: bool = False
) -> ChannelFields:
    """Validate a channel save (everything except its keys)."""
    channel_rules.check_type(channel.type)
    name = channel.name.strip()
    if not name:
        raise InvalidArgument("channel name is required")
    models = channel_rules.clean_list("models", list(channel.models))
    if not models:
        raise InvalidArgument("at least one model is required")
    groups = channel_rules.clean_list("groups", list(channel.groups)) or ["default"]
    if channel.weight < 0:
        raise InvalidArgument("weight must not be negative")
    if status not in (1, 2, 3):
        raise InvalidArgument(f"unknown channel status {status}")
    json_fields = {
        "model_mapping": channel_rules.check_model_mapping(channel.model_mapping),
        "status_code_mapping": channel_rules.check_status_code_mapping(channel.status_code_mapping),
        "setting": channel_rules.check_setting(channel.setting, allow_private=allow_private),
        "param_override": channel_rules.check_json_object("param_override", channel.param_override),
    }
    base_url = channel_rules.check_url(
        "base_url", channel.base_url, channel_rules.BASE_URL_SCHEMES, allow_private=allow_private
    )
    if not base_url and channel.type in channel_types.NEEDS_BASE_URL:
        raise InvalidArgument("this channel type needs a base URL (the address of its server)")
    return ChannelFields(
        type=channel.type, name=name, models=models, base_url=base_url,
        groups=groups, priority=channel.priority, weight=channel.weight, status=status,
        model_prefix=channel.model_prefix.strip(), system_prompt=channel.system_prompt,
        tag=channel.tag.strip(), test_model=channel.test_model.strip(),
        openai_organization=channel.openai_organization.strip(),
        other=channel_rules.check_other(channel.type, channel.other),
        auto_ban=channel.auto_ban, **json_fields,
    )  # fmt: skip


async def save_channel(deps: Deps, request: pb.SaveChannelRequest) -> pb.Channel:
    incoming = request.channel
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        roles.require_admin(actor.role)
        if incoming.id:
            row = await _update(deps, conn, incoming, actor_role=actor.role)
        else:
            row = await _create(deps, conn, incoming)
        await rebuild_abilities(conn, row)
        version = await channels_repo.bump_version(conn, channel_ids=[row.id])
        keys = await channels_repo.channel_keys(conn, channel_id=row.id)
    await deps.events.changed(events.CHANNEL, ids=[row.id], routing_version=version)
    return convert.channel(row, keys, box=deps.box, reveal="masked")


async def _create(deps: Deps, conn: Conn, incoming: pb.Channel) -> ChannelRecord:
    fields = channel_fields(
        incoming,
        status=incoming.status or ENABLED,
        allow_private=deps.channel_private_addresses,
    )
    keys = channel_rules.split_keys(incoming.type, incoming.key)
    if not keys:
        raise InvalidArgument("key is required")
    row = await channels_repo.insert_channel(conn, fields=fields, now=now())
    await channels_repo.replace_keys(
        conn, channel_id=row.id, new_keys=_sealed(deps.box, keys), kept={}
    )
    return row


async def _update(
    deps: Deps, conn: Conn, incoming: pb.Channel, *, actor_role: int
) -> ChannelRecord:
    current = await channels_repo.get_channel(conn, channel_id=incoming.id, for_update=True)
    if current is None:
        raise NotFound("channel not found")
    status = incoming.status or current.status
    fields = channel_fields(incoming, status=status, allow_private=deps.channel_private_addresses)
    old_keys = await channels_repo.channel_keys(conn, channel_id=current.id)
    box = deps.box
    keys = channel_rules.split_keys(incoming.type, incoming.key)
    moving = actor_role != roles.ROOT and _destination_changed(current, fields)
    unmasked: dict[str, str] = {}
    if keys or moving:
        plain = [box.decrypt(key_row.key_enc) for key_row in old_keys]
        unmasked = {mask_key(text): text for text in plain}
    if moving:
        _require_entered_keys(keys, unmasked)
    if keys:
        keys = [unmasked.get(key, key) for key in keys]  # a masked key echoes a stored one
        kept = {key_row.key_hash: key_row for key_row in old_keys}
        await channels_repo.replace_keys(
            conn, channel_id=current.id, new_keys=_sealed(box, keys), kept=kept
        )
    if status == ENABLED and current.status != ENABLED:
        await channels_repo.reenable_keys(conn, channel_id=current.id)
    row = await channels_repo.update_channel(conn, channel_id=current.id, fields=fields)
    assert row is not None
    return row


async def get_channel(deps: Deps, request: pb.GetChannelRequest) -> pb.Channel:
    async with deps.pool.acquire() as conn:
        row = await channels_repo.get_channel(conn, channel_id=request.id)
        if row is None:
            raise NotFound("channel not found")
        keys = await channels_repo.channel_keys(conn, channel_id=row.id)
    return convert.channel(row, keys, box=deps.box, reveal="masked")


async def list_channels(deps: Deps, request: pb.ListChannelsRequest) -> pb.ListChannelsResponse:
    limit, offset = paging(request.page, request.page_size)
    async with deps.pool.acquire() as conn:
        rows, total = await channels_repo.list_channels(
            conn, keyword=request.keyword.strip(), group=request.group.strip(),
            model=request.model.strip(), types=list(request.types),
            statuses=[int(status) for status in request.statuses], tags=list(request.tags),
            limit=limit, offset=offset,
        )  # fmt: skip
        channels = await with_keys(conn, rows, box=deps.box, reveal="none")
    return pb.ListChannelsResponse(channels=channels, total=total)


async def with_keys(
    conn: Conn, rows: list[ChannelRecord], *, box: SecretBox, reveal: str
) -> list[pb.Channel]:
    """The channels as messages with their keys, read in one query (`reveal` as in
    convert.channel)."""
    key_rows = await channels_repo.keys_of_channels(conn, channel_ids=[row.id for row in rows])
    by_channel: dict[int, list[ChannelKeyRecord]] = {}
    for key_row in key_rows:
        by_channel.setdefault(key_row.channel_id, []).append(key_row)
    return [
        convert.channel(row, by_channel.get(row.id, []), box=box, reveal=reveal) for row in rows
    ]


async def delete_channels(
    deps: Deps, request: pb.DeleteChannelsRequest
) -> pb.DeleteChannelsResponse:
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        roles.require_admin(actor.role)
        deleted = await channels_repo.delete_channels(
            conn, ids=list(request.ids), all_disabled=request.all_disabled
        )
        version = await channels_repo.bump_version(conn, channel_ids=deleted) if deleted else 0
    if deleted:
        await deps.events.changed(events.CHANNEL, ids=deleted, routing_version=version)
    return pb.DeleteChannelsResponse(deleted=len(deleted))


async def lock_channel_key(
    conn: Conn, channel_id: int, key_id: int
) -> tuple[ChannelRecord, ChannelKeyRecord]:
    """The channel and one of its keys, locked for update; NotFound unless the key is the
    channel's."""
    locked = await channels_repo.lock_key(conn, channel_id=channel_id, key_id=key_id)
    if locked is None:
        raise NotFound("channel key not found")
    return locked


async def report_channel_result(
    deps: Deps, request: pb.ReportChannelResultRequest
) -> pb.ReportChannelResultResponse:
    async with deps.pool.acquire() as conn, conn.transaction():
        channel, key = await lock_channel_key(conn, request.channel_id, request.key_id)
        outcome = await _apply_report(conn, request, channel, key)
        version = 0
        if outcome.changed:
            version = await channels_repo.bump_version(conn, channel_ids=[channel.id])
    if outcome.changed:
        await _publish_state(deps, request, channel, outcome, version)
    return pb.ReportChannelResultResponse(
        channel_disabled=outcome.channel_disabled, key_disabled=outcome.key_disabled
    )


async def _publish_state(
    deps: Deps,
    request: pb.ReportChannelResultRequest,
    channel: ChannelRecord,
    outcome: _Outcome,
    version: int,
) -> None:
    publisher = deps.events
    await publisher.changed(events.CHANNEL, ids=[channel.id], routing_version=version)
    await publisher.channel_state(
        channel_id=channel.id, key_id=request.key_id, channel_name=channel.name,
        enabled=not (outcome.key_disabled or outcome.channel_disabled),
        reason=request.error_message[:MAX_ERROR_LENGTH] if outcome.key_disabled else "",
    )  # fmt: skip


class _Outcome:
    """What a reported result changed."""

    def __init__(self) -> None:
        self.key_disabled = False
        self.key_enabled = False
        self.channel_disabled = False
        self.channel_enabled = False

    @property
    def changed(self) -> bool:
        return (
            self.key_disabled or self.key_enabled or self.channel_disabled or self.channel_enabled
        )


async def _apply_report(
    conn: Conn,
    request: pb.ReportChannelResultRequest,
    channel: ChannelRecord,
    key: ChannelKeyRecord,
) -> _Outcome:
    options = await channels_repo.all_options(conn)
    auto_disable = options.get("AutomaticDisableChannelEnabled") == "true" and channel.auto_ban
    auto_enable = options.get("AutomaticEnableChannelEnabled") == "true"
    outcome = _Outcome()
    status = key.status
    if request.success and auto_enable and status == AUTO_DISABLED:
        status, outcome.key_enabled = ENABLED, True
    elif not request.success and auto_disable and status == ENABLED:
        failure = channel_rules.Failure(
            channel_type=channel.type, status_code=request.status_code,
            error_type=request.error_type, error_code=request.error_code,
            error_message=request.error_message, local_error=request.local_error,
        )  # fmt: skip
        keywords = channel_rules.parse_keywords(options.get("AutomaticDisableKeywords"))
        if channel_rules.should_disable(failure, keywords):
            status, outcome.key_disabled = AUTO_DISABLED, True
            KEYS_AUTO_DISABLED.inc()
    error = "" if request.success else request.error_message[:MAX_ERROR_LENGTH]
    await channels_repo.record_result(
        conn, key_id=key.id, success=request.success, error=error, status=status
    )
    keys = await channels_repo.channel_keys(conn, channel_id=channel.id)
    any_enabled = any(key_row.status == ENABLED for key_row in keys)
    if outcome.key_disabled and not any_enabled and channel.status == ENABLED:
        reason = f"all keys disabled automatically: {error}"[:MAX_ERROR_LENGTH]
        await channels_repo.set_channel_status(
            conn, channel_id=channel.id, status=AUTO_DISABLED, reason=reason, now=now()
        )
        outcome.channel_disabled = True
        CHANNELS_AUTO_DISABLED.inc()
    elif outcome.key_enabled and channel.status == AUTO_DISABLED:
        await channels_repo.set_channel_status(
            conn, channel_id=channel.id, status=ENABLED, reason="", now=now()
        )
        outcome.channel_enabled = True
    return outcome


async def rebuild_abilities(conn: Conn, row: ChannelRecord) -> None:
    """Replace the channel's rows in the routing index (groups x models)."""
    await channels_repo.rebuild_abilities(
        conn, channel_id=row.id, groups=list(row.groups), models=list(row.models),
        priority=row.priority, weight=row.weight, enabled=row.status == ENABLED,
        tag=row.tag,
    )  # fmt: skip


def _destination_changed(current: ChannelRecord, fields: ChannelFields) -> bool:
    """The save changes where the channel's keys are sent: its type (default host), base URL
    or proxy."""
    return (
        fields.type != current.type
        or fields.base_url != current.base_url
        or channel_rules.proxy_of(fields.setting) != channel_rules.proxy_of(current.setting)
    )


def _require_entered_keys(keys: list[str], masked: dict[str, str]) -> None:
    """An admin who is not root sends the stored keys to a new destination only by typing them:
    revealing a key is root-only, and a new base URL would reveal it to its server."""
    if not keys or any(key in masked for key in keys):
        raise PermissionDenied(
            "changing a channel's type, base URL or proxy requires the root user, or entering "
            "its keys again (the stored keys are not sent to a new address)",
            code="reenter_channel_keys",
        )


def _sealed(box: SecretBox, keys: list[str]) -> list[tuple[str, str]]:
    return [(box.encrypt(key), box.lookup_hash(key)) for key in keys]
