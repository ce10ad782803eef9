"""Local channel selection from a routing snapshot: priority tiers, weighted random, key rotation.

Pure logic: built from an accounts.v1.RoutingSnapshot and kept current with RoutingDeltas,
no I/O.
"""

from __future__ import annotations

import logging
import random
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from sys import intern
from typing import Any

import orjson
from veloera.accounts.v1 import accounts_pb2

from services.relay.options import RelayOptions
from services.shared.addresses import url_is_private
from services.shared.channel_types import is_supported

logger = logging.getLogger(__name__)

CHANNEL_ENABLED = accounts_pb2.CHANNEL_STATUS_ENABLED
# Added to every weight, so weight 0 still gets picked (upstream `middleware/distributor.go`)
SMOOTHING = 10
NON_STREAM_ONLY = "NON_STREAM_ONLY"


@dataclass(frozen=True, slots=True)
class ChannelSetting:
    """The channel's `setting` JSON (upstream `model/channel.go`)."""

    force_format: bool = False
    thinking_to_content: bool = False
    non_stream_only: bool = False
    proxy: str = ""


@dataclass(slots=True)
class ChannelInfo:
    id: int
    type: int
    name: str
    base_url: str
    status: int
    priority: int
    weight: int
    keys: tuple[tuple[int, str], ...]  # (key id, key) of the enabled keys
    model_mapping: dict[str, str] = field(default_factory=dict)
    system_prompt: str = ""
    param_override: dict[str, Any] = field(default_factory=dict)
    status_code_mapping: dict[int, int] = field(default_factory=dict)
    setting: ChannelSetting = field(default_factory=ChannelSetting)
    model_prefix: str = ""
    other: str = ""
    organization: str = ""
    created_time: int = 0  # unix seconds (Azure's dot rule depends on it)
    private_target: bool = False  # base URL or proxy is a literal private/loopback address

    @property
    def enabled(self) -> bool:
        return self.status == CHANNEL_ENABLED and bool(self.keys)

    def upstream_model(self, model: str) -> str:
        return self.model_mapping.get(model, model) if self.model_mapping else model


@dataclass(frozen=True, slots=True)
class Candidate:
    channel: ChannelInfo
    weight: int  # already smoothed


GIZMO_PREFIXES = ("gpt-4-gizmo", "gpt-4o-gizmo")


def routing_name(model: str) -> str:
    """The name abilities list a model under: GPTs (`gpt-4-gizmo-*`, `gpt-4o-gizmo-*`) collapse
    to their wildcard entry (upstream `middleware/distributor.go`)."""
    for prefix in GIZMO_PREFIXES:
        if model.startswith(prefix):
            return prefix + "-*"
    return model


def _split_keys(joined: str) -> tuple[tuple[int, str], ...]:
    parts = [p.strip() for line in joined.splitlines() for p in line.split(",")]
    return tuple((0, p) for p in parts if p)


def _json_object(channel_id: int, field_name: str, text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        logger.warning("channel %d has an invalid %s; ignored", channel_id, field_name)
        return {}
    return value if isinstance(value, dict) else {}


def _parse_mapping(channel_id: int, text: str) -> dict[str, str]:
    value = _json_object(channel_id, "model_mapping", text)
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str) and v}


def _parse_status_mapping(channel_id: int, text: str) -> dict[int, int]:
    result: dict[int, int] = {}
    for key, value in _json_object(channel_id, "status_code_mapping", text).items():
        try:
            result[int(key)] = int(value)
        except (TypeError, ValueError):
            continue
    return result


def _parse_setting(channel_id: int, text: str) -> ChannelSetting:
    value = _json_object(channel_id, "setting", text)
    if not value:
        return ChannelSetting()
    proxy = value.get("proxy")
    return ChannelSetting(
        force_format=value.get("force_format") is True,
        thinking_to_content=value.get("thinking_to_content") is True,
        non_stream_only=value.get("stream_support") == NON_STREAM_ONLY,
        proxy=proxy if isinstance(proxy, str) else "",
    )


def channel_from_proto(channel: accounts_pb2.Channel) -> ChannelInfo:
    """The channel as routing sees it. A type without an adaptor keeps no keys (never routed,
    its key never sent): accounts refuses such saves, this guards rows saved before."""
    if not is_supported(channel.type):
        logger.warning("channel %d has type %d without an adaptor; not routed", channel.id,
                       channel.type)  # fmt: skip
        keys: tuple[tuple[int, str], ...] = ()
    elif channel.keys:
        keys = tuple((k.id, k.key) for k in channel.keys if k.status == CHANNEL_ENABLED and k.key)
    else:
        keys = _split_keys(channel.key)
    setting = _parse_setting(channel.id, channel.setting)
    return ChannelInfo(
        id=channel.id,
        type=channel.type,
        name=channel.name,
        base_url=intern(channel.base_url),  # thousands of channels share a few upstreams
        status=channel.status,
        priority=channel.priority,
        weight=channel.weight,
        keys=keys,
        model_mapping=_parse_mapping(channel.id, channel.model_mapping),
        system_prompt=channel.system_prompt,
        param_override=_json_object(channel.id, "param_override", channel.param_override),
        status_code_mapping=_parse_status_mapping(channel.id, channel.status_code_mapping),
        setting=setting,
        model_prefix=intern(channel.model_prefix.strip()),
        other=channel.other,
        organization=intern(channel.openai_organization),
        created_time=channel.created_time,
        private_target=url_is_private(channel.base_url) or url_is_private(setting.proxy),
    )


# (group, priority, smoothed weight, models): the enabled abilities of one channel, grouped so
# that 100 models of a channel cost one tuple of interned names, not 100 ability objects.
Placement = tuple[str, int, int, tuple[str, ...]]


def placements(abilities: Iterable[accounts_pb2.RoutingAbility]) -> tuple[Placement, ...]:
    """One channel's enabled abilities."""
    grouped: Grouped = {}
    for ability in abilities:
        _group_ability(grouped, ability)
    return _placed(grouped)


# (group, priority, smoothed weight) -> models: one channel's abilities while they are read
Grouped = dict[tuple[str, int, int], list[str]]


def _group_ability(grouped: Grouped, ability: accounts_pb2.RoutingAbility) -> None:
    if ability.enabled:
        key = (intern(ability.group), ability.priority, max(ability.weight, 0) + SMOOTHING)
        grouped.setdefault(key, []).append(intern(ability.model))


def _placed(grouped: Grouped) -> tuple[Placement, ...]:
    """Placements in a fixed order; a (group, model) listed twice (accounts' primary key
    forbids it) keeps its highest priority, then weight, whatever order the rows came in."""
    seen: set[tuple[str, str]] = set()
    out: list[Placement] = []
    for group, priority, weight in sorted(grouped, key=lambda k: (k[0], -k[1], -k[2])):
        models = []
        for model in grouped[(group, priority, weight)]:
            if (group, model) not in seen:
                seen.add((group, model))
                models.append(model)
        if models:
            out.append((group, priority, weight, tuple(models)))
    return tuple(out)


class Tier:
    """The channels of one priority for one (group, model), ordered by channel id in parallel
    lists: a channel joins or leaves with a bisect and a memmove (no rebuild of the tier), and a
    pick is a bisect over the cumulative weights."""

    __slots__ = ("_cumulative", "channels", "ids", "priority", "weights")

    def __init__(self, priority: int) -> None:
        self.priority = priority
        self.ids: list[int] = []
        self.channels: list[ChannelInfo] = []
        self.weights: list[int] = []
        self._cumulative: list[int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, channel: ChannelInfo, weight: int) -> None:
        """Insert the channel, or replace it in place when it is already here."""
        self._cumulative = None
        ids = self.ids
        if not ids or ids[-1] < channel.id:  # a snapshot comes in id order
            ids.append(channel.id)
            self.channels.append(channel)
            self.weights.append(weight)
            return
        index = bisect_left(ids, channel.id)
        if ids[index] == channel.id:
            self.channels[index], self.weights[index] = channel, weight
        else:
            ids.insert(index, channel.id)
            self.channels.insert(index, channel)
            self.weights.insert(index, weight)

    def remove(self, channel_id: int) -> None:
        index = self._index(channel_id)
        if index >= 0:
            del self.ids[index], self.channels[index], self.weights[index]
            self._cumulative = None

    def _index(self, channel_id: int) -> int:
        index = bisect_left(self.ids, channel_id)
        return index if index < len(self.ids) and self.ids[index] == channel_id else -1

    def candidates(self) -> tuple[Candidate, ...]:
        return tuple(map(Candidate, self.channels, self.weights))

    def pick(self, exclude: Collection[int], rng: random.Random | None) -> ChannelInfo | None:
        """Weighted random over the channels not in `exclude` (what `pick_weighted` does over
        the same pool, without building it when nothing is excluded)."""
        skip = {i for i in map(self._index, exclude) if i >= 0} if exclude else None
        if skip:
            pool = [
                Candidate(channel, weight)
                for i, (channel, weight) in enumerate(zip(self.channels, self.weights, strict=True))
                if i not in skip
            ]
            return pick_weighted(pool, rng) if pool else None
        if len(self.ids) <= 1:
            return self.channels[0] if self.channels else None
        cumulative = self._cumulative
        if cumulative is None:
            cumulative = self._cumulative = list(accumulate(self.weights))
        return self.channels[bisect_right(cumulative, (rng or random).randrange(cumulative[-1]))]


class Route:
    """The priority tiers of one (group, model), highest priority first."""

    __slots__ = ("tiers",)

    def __init__(self) -> None:
        self.tiers: list[Tier] = []

    def add(self, channel: ChannelInfo, priority: int, weight: int) -> None:
        tiers = self.tiers
        index = 0
        while index < len(tiers) and tiers[index].priority > priority:
            index += 1
        if index == len(tiers) or tiers[index].priority != priority:
            tiers.insert(index, Tier(priority))
        tiers[index].add(channel, weight)

    def remove(self, channel_id: int, priority: int) -> None:
        for index, tier in enumerate(self.tiers):
            if tier.priority == priority:
                tier.remove(channel_id)
                if not tier:
                    del self.tiers[index]
                return

    def candidates(self) -> tuple[Candidate, ...]:
        return tuple(c for tier in self.tiers for c in tier.candidates())


class RoutingTable:
    """The index of one routing version: (group, model) -> priority tiers, plus channel prefixes
    and the model names of each group.

    A change to a few channels is applied in place (`replace_channel`, `apply_delta`): each
    (group, model) the channel serves moves by a bisect, so a change costs what the channel
    serves, not the whole table. Only the event loop mutates it, between requests' synchronous
    reads; a full snapshot builds a new table (off the loop) and the store swaps the reference.
    """

    __slots__ = (
        "_dormant",
        "_dormant_names",
        "_known",
        "_names",
        "_placed",
        "_prefixes",
        "_routes",
        "_sorted_names",
        "channels",
        "enabled_channels",
        "keys",
        "options",
        "version",
    )

    def __init__(self, version: int = 0, options: RelayOptions | None = None) -> None:
        self.version = version
        self.options = options or RelayOptions()
        self.channels: dict[int, ChannelInfo] = {}
        self.enabled_channels = 0
        self.keys = 0  # enabled keys over enabled and auto-disabled channels
        self._placed: dict[int, tuple[Placement, ...]] = {}
        self._routes: dict[tuple[str, str], Route] = {}
        # (group, prefix) -> stripped model -> the prefix channels serving it
        self._prefixes: dict[tuple[str, str], dict[str, Route]] = {}
        self._names: dict[str, dict[str, int]] = {}  # group -> model name -> routes naming it
        self._sorted_names: dict[str, tuple[str, ...]] = {}
        self._known: dict[str, int] = {}
        # Models a channel lists but does not serve (a disabled ability, an auto-disabled
        # channel), by channel, and how many channels list each: such a model is "not available"
        # (503), not "not found" (404). Empty for most channels.
        self._dormant: dict[int, tuple[str, ...]] = {}
        self._dormant_names: dict[str, int] = {}

    @classmethod
    def from_snapshot(cls, snapshot: accounts_pb2.RoutingSnapshot) -> RoutingTable:
        # One pass over the abilities, keeping only interned names: holding half a million
        # ability objects at once would leave the relay's heap that much larger for good.
        grouped: dict[int, Grouped] = {}
        disabled: dict[int, list[str]] = {}
        for ability in snapshot.abilities:
            _group_ability(grouped.setdefault(ability.channel_id, {}), ability)
            if not ability.enabled:
                disabled.setdefault(ability.channel_id, []).append(intern(ability.model))
        table = cls(snapshot.version, _options(snapshot.options))
        for channel in snapshot.channels:
            placed = _placed(grouped.pop(channel.id, {}))
            table.put(channel_from_proto(channel), placed, disabled.pop(channel.id, ()))
        return table

    def apply_delta(self, delta: accounts_pb2.RoutingDelta) -> Iterator[None]:
        """Apply what changed after our version, one channel at a time, yielding after each
        so the caller can let requests run in between; the version moves last."""
        abilities = _by_channel(delta.abilities)
        routable = {channel.id: channel for channel in delta.channels}
        for channel_id in delta.channel_ids:
            proto = routable.get(channel_id)
            info = channel_from_proto(proto) if proto is not None else None
            self.replace_channel(channel_id, info, abilities.get(channel_id, ()))
            yield
        if delta.options_changed:
            self.options = _options(delta.options)
        self.version = delta.version

    def apply(self, delta: accounts_pb2.RoutingDelta) -> None:
        for _ in self.apply_delta(delta):
            pass

    def replace_channel(
        self,
        channel_id: int,
        channel: ChannelInfo | None,
        abilities: Iterable[accounts_pb2.RoutingAbility] = (),
    ) -> None:
        """Put `channel` with its abilities in place of the stored one (None: it is gone or
        manually disabled)."""
        abilities = tuple(abilities)
        placed = placements(abilities) if channel is not None else ()
        disabled = [intern(a.model) for a in abilities if not a.enabled]
        if channel is not None:
            self.put(channel, placed, disabled)
        else:
            self._replace(channel_id, None, ())

    def put(
        self, channel: ChannelInfo, placed: tuple[Placement, ...], disabled: Iterable[str] = ()
    ) -> None:
        """Add or replace `channel`, serving what `placed` says (when it is enabled); models
        it lists without serving them (`disabled` abilities, or all of a disabled channel's)
        stay known as unavailable."""
        listed = set(disabled)
        if not channel.enabled:
            listed.update(m for _, _, _, models in placed for m in models)
            placed = ()
        self._replace(channel.id, channel, placed, tuple(sorted(listed)))

    def _replace(
        self,
        channel_id: int,
        channel: ChannelInfo | None,
        placed: tuple[Placement, ...],
        dormant: tuple[str, ...] = (),
    ) -> None:
        old = self.channels.pop(channel_id, None)
        if old is not None:
            self._count(old, -1)
            self._unplace_all(old, channel, placed)
        for name in self._dormant.pop(channel_id, ()):
            left = self._dormant_names[name] - 1
            if left:
                self._dormant_names[name] = left
            else:
                del self._dormant_names[name]
        if channel is None:
            return
        self.channels[channel_id] = channel
        self._count(channel, 1)
        if dormant:
            self._dormant[channel_id] = dormant
            for name in dormant:
                self._dormant_names[name] = self._dormant_names.get(name, 0) + 1
        if placed:
            self._placed[channel_id] = placed
        for group, priority, weight, models in placed:
            for model in models:
                self._place(channel, group, model, priority, weight)

    def _unplace_all(
        self, old: ChannelInfo, new: ChannelInfo | None, placed: tuple[Placement, ...]
    ) -> None:
        """Take `old` out of the tiers `new` leaves; where it stays (same group, model and
        priority: a weight, key or name edit) `_place` overwrites it in place, sparing a
        delete and an insert in tiers of thousands."""
        stays = {(g, m, p) for g, p, _, models in placed for m in models}
        same_prefix = new is not None and new.model_prefix == old.model_prefix
        for group, priority, _, models in self._placed.pop(old.id, ()):
            for model in models:
                kept = (group, model, priority) in stays
                self._unplace(old, group, model, priority, route=not kept,
                              prefix=not (kept and same_prefix))  # fmt: skip

    def _count(self, channel: ChannelInfo, sign: int) -> None:
        self.keys += sign * len(channel.keys)
        if channel.enabled:
            self.enabled_channels += sign

    def _place(
        self, channel: ChannelInfo, group: str, model: str, priority: int, weight: int
    ) -> None:
        route = self._routes.get((group, model))
        if route is None:
            route = self._routes[(group, model)] = Route()
            self._name(group, model, 1)
        route.add(channel, priority, weight)
        prefix = channel.model_prefix
        if prefix:
            by_model = self._prefixes.setdefault((group, prefix), {})
            pool = by_model.get(model)
            if pool is None:
                pool = by_model[model] = Route()
                self._name(group, intern(prefix + model), 1)
            pool.add(channel, priority, weight)

    def _unplace(
        self,
        channel: ChannelInfo,
        group: str,
        model: str,
        priority: int,
        *,
        route: bool,
        prefix: bool,
    ) -> None:
        if route:
            self._leave_route(channel.id, group, model, priority)
        if prefix and channel.model_prefix:
            self._leave_prefix(channel, group, model, priority)

    def _leave_route(self, channel_id: int, group: str, model: str, priority: int) -> None:
        route = self._routes.get((group, model))
        if route is not None:
            route.remove(channel_id, priority)
            if not route.tiers:
                del self._routes[(group, model)]
                self._name(group, model, -1)

    def _leave_prefix(self, channel: ChannelInfo, group: str, model: str, priority: int) -> None:
        prefix = channel.model_prefix
        by_model = self._prefixes.get((group, prefix))
        pool = by_model.get(model) if by_model is not None else None
        if by_model is not None and pool is not None:
            pool.remove(channel.id, priority)
            if not pool.tiers:
                del by_model[model]
                self._name(group, prefix + model, -1)
                if not by_model:
                    del self._prefixes[(group, prefix)]

    def _name(self, group: str, name: str, delta: int) -> None:
        """Count the routes that list `name` in `group` (a plain model and a prefixed name
        can coincide); the sorted list is rebuilt on the next read."""
        names = self._names.setdefault(group, {})
        count = names.get(name, 0) + delta
        if count > 0:
            names[name] = count
        else:
            names.pop(name, None)
            if not names:
                del self._names[group]
        known = self._known.get(name, 0) + delta
        if known > 0:
            self._known[name] = known
        else:
            self._known.pop(name, None)
        self._sorted_names.pop(group, None)

    def models_for(self, group: str) -> tuple[str, ...]:
        found = self._sorted_names.get(group)
        if found is None:
            found = tuple(sorted(self._names.get(group, ())))
            self._sorted_names[group] = found
        return found

    def prefixed(self, group: str, model: str) -> tuple[str, tuple[Candidate, ...]] | None:
        """(stripped model, prefix channels serving it) when `model` starts with a known
        channel prefix of this group; the longest prefix wins."""
        best: tuple[str, Route] | None = None
        best_len = 0
        for (g, prefix), by_model in self._prefixes.items():
            if g != group or len(prefix) <= best_len or not model.startswith(prefix):
                continue
            stripped = model[len(prefix) :]
            pool = by_model.get(stripped)
            if pool is not None:
                best, best_len = (stripped, pool), len(prefix)
        return (best[0], best[1].candidates()) if best is not None else None

    def lists(self, model: str) -> bool:
        """Some channel, serving it or not, lists `model` (else: model_not_found)."""
        for name in (model, routing_name(model)):
            if name in self._known or name in self._dormant_names:
                return True
        return False

    def is_known_model(self, model: str) -> bool:
        """A model some channel serves (bounded: safe as a metrics label)."""
        return model in self._known

    def pinned(self, channel_id: int) -> ChannelInfo | None:
        channel = self.channels.get(channel_id)
        return channel if channel is not None and channel.enabled else None

    def index(self) -> dict[str, Any]:
        """Everything routing reads, as plain values (channel ids and weights): two tables
        with equal indexes route every request alike."""
        routes = {key: _plain(route) for key, route in self._routes.items()}
        prefixes = {
            key: {model: _plain(pool) for model, pool in by_model.items()}
            for key, by_model in self._prefixes.items()
        }
        return {
            "version": self.version,
            "options": self.options,
            "channels": dict(self.channels),
            "routes": routes,
            "prefixes": prefixes,
            "models": {group: self.models_for(group) for group in self._names},
            "known": set(self._known),
            "dormant": dict(self._dormant_names),
            "counts": (self.enabled_channels, self.keys),
        }

    def select(
        self,
        group: str,
        model: str,
        exclude: Collection[int] = (),
        rng: random.Random | None = None,
        start_tier: int = 0,
    ) -> ChannelInfo | None:
        """The first tier from `start_tier` (clamped to the lowest) with an untried channel,
        then weighted random in it."""
        route = self._routes.get((group, model)) or self._routes.get((group, routing_name(model)))
        if route is None:
            return None
        tiers = route.tiers
        if start_tier:
            tiers = tiers[min(start_tier, len(tiers) - 1) :]
        for tier in tiers:
            picked = tier.pick(exclude, rng)
            if picked is not None:
                return picked
        return None


def _options(options: Iterable[accounts_pb2.Option]) -> RelayOptions:
    return RelayOptions.parse({o.key: o.value for o in options})


def _by_channel(
    abilities: Iterable[accounts_pb2.RoutingAbility],
) -> dict[int, list[accounts_pb2.RoutingAbility]]:
    found: dict[int, list[accounts_pb2.RoutingAbility]] = {}
    for ability in abilities:
        found.setdefault(ability.channel_id, []).append(ability)
    return found


def _plain(route: Route) -> list[tuple[int, list[tuple[int, int]]]]:
    return [(tier.priority, list(zip(tier.ids, tier.weights, strict=True))) for tier in route.tiers]


def pick_weighted(pool: Collection[Candidate], rng: random.Random | None = None) -> ChannelInfo:
    if len(pool) == 1:
        return next(iter(pool)).channel
    total = sum(c.weight for c in pool)
    point = (rng or random).randrange(total)
    for candidate in pool:
        point -= candidate.weight
        if point < 0:
            return candidate.channel
    raise AssertionError("unreachable: weights are positive")


class KeyRotator:
    """Round-robin over a channel's enabled keys (upstream `middleware/distributor.go`)."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def pick(self, channel: ChannelInfo) -> tuple[int, str]:
        keys = channel.keys
        if len(keys) == 1:
            return keys[0]
        index = self._next.get(channel.id, 0)
        self._next[channel.id] = index + 1
        return keys[index % len(keys)]
