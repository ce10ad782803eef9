"""Property tests: a routing table kept current with deltas equals one rebuilt from a snapshot.

The model is accounts' view: channels with keys, a prefix and abilities. Each step changes some
channels (or the options) the way the console, auto-disable or a delete would, and produces the
RoutingDelta accounts would send; the table the relay patched in place must index, and route,
exactly like `RoutingTable.from_snapshot` of the same state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from veloera.accounts.v1 import accounts_pb2 as pb

from services.relay.routing.table import RoutingTable

ENABLED = pb.CHANNEL_STATUS_ENABLED
ROUTABLE = (pb.CHANNEL_STATUS_ENABLED, pb.CHANNEL_STATUS_AUTO_DISABLED)
STATUSES = (*ROUTABLE, pb.CHANNEL_STATUS_MANUALLY_DISABLED)
GROUPS = ("default", "vip")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude", "gpt-4-gizmo-*", "p/gpt-4o")
PREFIXES = ("", "", "p/", "p/x/")


@dataclass(frozen=True)
class Stored:
    """A channel row with its keys and ability rows, as accounts stores them."""

    channel: pb.Channel
    abilities: tuple[pb.RoutingAbility, ...]


abilities_st = st.lists(
    st.builds(
        pb.RoutingAbility,
        group=st.sampled_from(GROUPS),
        model=st.sampled_from(MODELS),
        priority=st.sampled_from((0, 1, 5)),
        weight=st.sampled_from((0, 3, 300)),
        enabled=st.booleans(),
    ),
    max_size=6,
)
keys_st = st.lists(st.sampled_from(ROUTABLE), max_size=3)


@st.composite
def stored_channels(draw: st.DrawFn, channel_id: int) -> Stored:
    key_statuses = draw(keys_st)
    channel = pb.Channel(
        id=channel_id,
        type=1,
        name=f"ch{channel_id}",
        status=draw(st.sampled_from(STATUSES)),
        model_prefix=draw(st.sampled_from(PREFIXES)),
        base_url="http://upstream.test",
        keys=[
            pb.ChannelKey(id=channel_id * 10 + i, key=f"k{channel_id}-{i}", status=status)
            for i, status in enumerate(key_statuses)
        ],
    )
    rows = tuple(
        pb.RoutingAbility(
            group=a.group,
            model=a.model,
            channel_id=channel_id,
            priority=a.priority,
            weight=a.weight,
            enabled=a.enabled,
        )
        for a in draw(abilities_st)
    )
    return Stored(channel, rows)


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[list[int], dict[int, Stored | None], bool]]:
    """Change sets: which channel ids changed, their new state (None: deleted), options."""
    out = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        ids = draw(st.lists(st.integers(min_value=1, max_value=8), max_size=4, unique=True))
        changes: dict[int, Stored | None] = {}
        for cid in ids:
            changes[cid] = None if draw(st.integers(0, 4)) == 0 else draw(stored_channels(cid))
        out.append((ids, changes, draw(st.booleans())))
    return out


def snapshot_of(
    version: int, db: dict[int, Stored], options: list[pb.Option]
) -> pb.RoutingSnapshot:
    routable = [db[cid] for cid in sorted(db) if db[cid].channel.status in ROUTABLE]
    return pb.RoutingSnapshot(
        version=version,
        channels=[s.channel for s in routable],
        abilities=[a for s in routable for a in s.abilities],
        options=options,
    )


def delta_of(
    version: int, ids: list[int], db: dict[int, Stored], options: list[pb.Option] | None
) -> pb.RoutingDelta:
    routable = [db[cid] for cid in ids if cid in db and db[cid].channel.status in ROUTABLE]
    return pb.RoutingDelta(
        version=version,
        channel_ids=ids,
        channels=[s.channel for s in routable],
        abilities=[a for s in routable for a in s.abilities],
        options_changed=options is not None,
        options=options or [],
    )


def routes_alike(a: RoutingTable, b: RoutingTable, seed: int) -> None:
    """Same picks for the same random stream, with and without exclusions and tier starts."""
    names = [*MODELS, "gpt-4-gizmo-g-1", "p/claude", "p/x/gpt-4o", "nope"]
    for group in GROUPS:
        assert a.models_for(group) == b.models_for(group)
        for model in names:
            assert a.prefixed(group, model) == b.prefixed(group, model)
            assert a.is_known_model(model) == b.is_known_model(model)
            for exclude, start in (((), 0), ((1, 3), 0), ((2,), 1), ((), 9)):
                ra, rb = random.Random(seed), random.Random(seed)
                for _ in range(3):
                    pa = a.select(group, model, exclude, rng=ra, start_tier=start)
                    pb_ = b.select(group, model, exclude, rng=rb, start_tier=start)
                    assert pa == pb_
    for cid in range(1, 9):
        assert a.pinned(cid) == b.pinned(cid)


@settings(max_examples=150, deadline=None)
@given(
    initial=st.lists(st.integers(min_value=1, max_value=8), max_size=8, unique=True).flatmap(
        lambda ids: st.tuples(*(stored_channels(cid) for cid in ids))
    ),
    changes=steps(),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_applying_deltas_equals_rebuilding(
    initial: tuple[Stored, ...],
    changes: list[tuple[list[int], dict[int, Stored | None], bool]],
    seed: int,
) -> None:
    db = {s.channel.id: s for s in initial}
    options = [pb.Option(key="global.auto_retry_count", value="1")]
    table = RoutingTable.from_snapshot(snapshot_of(1, db, options))
    for version, (ids, new_state, options_changed) in enumerate(changes, start=2):
        for cid, stored in new_state.items():
            if stored is None:
                db.pop(cid, None)
            else:
                db[cid] = stored
        if options_changed:
            options = [pb.Option(key="global.auto_retry_count", value=str(version))]
        table.apply(delta_of(version, ids, db, options if options_changed else None))
        rebuilt = RoutingTable.from_snapshot(snapshot_of(version, db, options))
        assert table.index() == rebuilt.index()
        routes_alike(table, rebuilt, seed)


def test_a_delta_moves_one_channel_between_tiers_and_keeps_the_rest() -> None:
    def stored(cid: int, priority: int) -> Stored:
        channel = pb.Channel(id=cid, type=1, name=f"c{cid}", status=ENABLED, key="k")
        rows = (pb.RoutingAbility(group="default", model="m", channel_id=cid, priority=priority,
                                  weight=0, enabled=True),)  # fmt: skip
        return Stored(channel, rows)

    db = {cid: stored(cid, 0) for cid in (1, 2, 3)}
    table = RoutingTable.from_snapshot(snapshot_of(1, db, []))
    db[2] = stored(2, 9)
    table.apply(delta_of(2, [2], db, None))
    assert table.index()["routes"][("default", "m")] == [(9, [(2, 10)]), (0, [(1, 10), (3, 10)])]
    del db[3]
    table.apply(delta_of(3, [3], db, None))
    assert table.index()["routes"][("default", "m")] == [(9, [(2, 10)]), (0, [(1, 10)])]
    assert table.version == 3 and table.pinned(3) is None
