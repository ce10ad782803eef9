"""Use cases for runtime options and the routing snapshot the relays route from."""

from __future__ import annotations

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import channels_repo, convert, events, option_rules, options_repo, roles
from services.accounts.deps import Deps, load_actor, now, paging
from services.accounts.metrics import SNAPSHOTS
from services.accounts.types import Conn
from services.accounts.usecases.channels import with_keys

# A change to more channels than this is sent as "resync": the relay builds a full snapshot
# off its event loop rather than patching that many channels on it.
MAX_DELTA_CHANNELS = 500


async def list_options(deps: Deps, request: pb.ListOptionsRequest) -> pb.ListOptionsResponse:
    async with deps.pool.acquire() as conn:
        stored = await options_repo.load_options(conn, deps.box)
    shown = option_rules.visible(
        option_rules.merged(stored), include_secrets=request.include_secrets
    )
    return pb.ListOptionsResponse(options=_options(shown))


async def update_option(deps: Deps, request: pb.UpdateOptionRequest) -> pb.Option:
    key = request.key.strip()
    value = option_rules.validate(key, request.value)
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        roles.require_root(actor.role)
        version = await channels_repo.bump_version(conn, options=True)  # serialises writes
        current = option_rules.merged(await options_repo.load_options(conn, deps.box))
        option_rules.check_prerequisites(key, value, current)
        await options_repo.store_option(conn, deps.box, key=key, value=value)
        await options_repo.insert_audit(
            conn, actor_id=actor.id, key=key, now=now(),
            old_value=option_rules.masked(key, current.get(key, "")),
            new_value=option_rules.masked(key, value),
        )  # fmt: skip
    await deps.events.changed(events.OPTION, routing_version=version, option_keys=[key])
    return pb.Option(key=key, value=value)


async def list_option_audit(
    deps: Deps, request: pb.ListOptionAuditRequest
) -> pb.ListOptionAuditResponse:
    limit, offset = paging(request.page, request.page_size)
    async with deps.pool.acquire() as conn:
        rows, total = await options_repo.list_audit(
            conn, key=request.key.strip(), limit=limit, offset=offset
        )
    entries = [
        pb.OptionAuditEntry(
            id=row.id, actor_id=row.actor_id, key=row.key, old_value=row.old_value,
            new_value=row.new_value, created_time=row.created_at,
        )
        for row in rows
    ]  # fmt: skip
    return pb.ListOptionAuditResponse(entries=entries, total=total)


async def get_routing_snapshot(
    deps: Deps, request: pb.GetRoutingSnapshotRequest
) -> pb.RoutingSnapshot:
    async with deps.pool.acquire() as conn:
        version = await channels_repo.get_version(conn)
        if request.known_version and request.known_version == version:
            SNAPSHOTS.labels("unchanged").inc()
            return pb.RoutingSnapshot(version=version, unchanged=True)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await _snapshot(deps, conn)
    SNAPSHOTS.labels("full").inc()
    return snapshot


async def get_routing_delta(deps: Deps, request: pb.GetRoutingDeltaRequest) -> pb.RoutingDelta:
    """Only the channels changed after `since_version` (what the routing_changes log
    names), so a relay's update costs what changed, not the whole table."""
    since = request.since_version
    async with (
        deps.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        version = await channels_repo.get_version(conn)
        if since == version:
            SNAPSHOTS.labels("unchanged").inc()
            return pb.RoutingDelta(version=version)
        changes = None
        if 0 < since < version:
            changes = await channels_repo.changes_since(conn, since=since, until=version)
        if changes is None or not changes.complete or len(changes.channel_ids) > MAX_DELTA_CHANNELS:
            SNAPSHOTS.labels("resync").inc()
            return pb.RoutingDelta(version=version, resync=True)
        rows = await channels_repo.routable_channels_in(conn, channel_ids=changes.channel_ids)
        channels = await with_keys(conn, rows, box=deps.box, reveal="plain")
        abilities = await channels_repo.abilities_of_channels(
            conn, channel_ids=[row.id for row in rows]
        )
        options = await _routing_options(conn) if changes.options else []
    SNAPSHOTS.labels("delta").inc()
    return pb.RoutingDelta(
        version=version, channel_ids=changes.channel_ids, channels=channels,
        abilities=[convert.ability(row) for row in abilities],
        options_changed=changes.options, options=options,
    )  # fmt: skip


async def _snapshot(deps: Deps, conn: Conn) -> pb.RoutingSnapshot:
    version = await channels_repo.get_version(conn)
    channels = await with_keys(
        conn, await channels_repo.routable_channels(conn), box=deps.box, reveal="plain"
    )
    abilities = await channels_repo.all_abilities(conn)
    return pb.RoutingSnapshot(
        version=version,
        channels=channels,
        abilities=[convert.ability(row) for row in abilities],
        options=await _routing_options(conn),
    )


async def _routing_options(conn: Conn) -> list[pb.Option]:
    """The options the relays see (no secrets)."""
    stored = await channels_repo.all_options(conn)
    return _options(option_rules.visible(option_rules.merged(stored), include_secrets=False))


def _options(values: dict[str, str]) -> list[pb.Option]:
    return [pb.Option(key=key, value=value) for key, value in sorted(values.items())]
