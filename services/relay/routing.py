"""Local channel selection from a routing snapshot: priority tiers, weighted random, key rotation.

Pure logic: built from an accounts.v1.RoutingSnapshot, no I/O.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import orjson
from veloera.accounts.v1 import accounts_pb2

logger = logging.getLogger(__name__)

CHANNEL_ENABLED = accounts_pb2.CHANNEL_STATUS_ENABLED
SMOOTHING = 10  # added to every weight, so weight 0 still gets picked (reference §3.4 step 8)
DEFAULT_BASE_URLS = {1: "https://api.openai.com"}


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

    @property
    def enabled(self) -> bool:
        return self.status == CHANNEL_ENABLED and bool(self.keys)

    def upstream_model(self, model: str) -> str:
        return self.model_mapping.get(model, model) if self.model_mapping else model


@dataclass(frozen=True, slots=True)
class Candidate:
    channel: ChannelInfo
    weight: int  # already smoothed


Tier = tuple[Candidate, ...]


def _split_keys(joined: str) -> tuple[tuple[int, str], ...]:
    parts = [p.strip() for line in joined.splitlines() for p in line.split(",")]
    return tuple((0, p) for p in parts if p)


def _parse_mapping(channel_id: int, text: str) -> dict[str, str]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        logger.warning("channel %d has an invalid model_mapping; ignored", channel_id)
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str) and v}


def channel_from_proto(channel: accounts_pb2.Channel) -> ChannelInfo:
    if channel.keys:
        keys = tuple((k.id, k.key) for k in channel.keys if k.status == CHANNEL_ENABLED and k.key)
    else:
        keys = _split_keys(channel.key)
    return ChannelInfo(
        id=channel.id,
        type=channel.type,
        name=channel.name,
        base_url=channel.base_url or DEFAULT_BASE_URLS.get(channel.type, ""),
        status=channel.status,
        priority=channel.priority,
        weight=channel.weight,
        keys=keys,
        model_mapping=_parse_mapping(channel.id, channel.model_mapping),
    )


class RoutingTable:
    """An immutable index of one snapshot version: (group, model) → priority tiers."""

    __slots__ = ("_models", "_tiers", "channels", "version")

    def __init__(
        self,
        version: int,
        channels: Iterable[ChannelInfo],
        abilities: Iterable[accounts_pb2.RoutingAbility],
    ) -> None:
        self.version = version
        self.channels = {c.id: c for c in channels}
        by_key: dict[tuple[str, str], dict[int, list[Candidate]]] = defaultdict(
            lambda: defaultdict(list)
        )
        seen: set[tuple[str, str, int]] = set()
        for ability in abilities:
            channel = self.channels.get(ability.channel_id)
            if not ability.enabled or channel is None or not channel.enabled:
                continue
            marker = (ability.group, ability.model, channel.id)
            if marker in seen:
                continue
            seen.add(marker)
            weight = max(ability.weight, 0) + SMOOTHING
            by_key[(ability.group, ability.model)][ability.priority].append(
                Candidate(channel, weight)
            )
        self._tiers: dict[tuple[str, str], tuple[Tier, ...]] = {
            key: tuple(tuple(tiers[p]) for p in sorted(tiers, reverse=True))
            for key, tiers in by_key.items()
        }
        models: dict[str, set[str]] = defaultdict(set)
        for group, model in self._tiers:
            models[group].add(model)
        self._models = {group: tuple(sorted(names)) for group, names in models.items()}

    @classmethod
    def from_snapshot(cls, snapshot: accounts_pb2.RoutingSnapshot) -> RoutingTable:
        channels = [channel_from_proto(c) for c in snapshot.channels]
        return cls(snapshot.version, channels, snapshot.abilities)

    def models_for(self, group: str) -> tuple[str, ...]:
        return self._models.get(group, ())

    def pinned(self, channel_id: int) -> ChannelInfo | None:
        channel = self.channels.get(channel_id)
        return channel if channel is not None and channel.enabled else None

    def select(
        self,
        group: str,
        model: str,
        exclude: Collection[int] = (),
        rng: random.Random | None = None,
    ) -> ChannelInfo | None:
        """The highest-priority tier with an untried channel, then weighted random in it."""
        tiers = self._tiers.get((group, model))
        if tiers is None:
            return None
        for tier in tiers:
            pool = [c for c in tier if c.channel.id not in exclude] if exclude else tier
            if pool:
                return pick_weighted(pool, rng)
        return None


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
    """Round-robin over a channel's enabled keys (reference §3.4 step 10)."""

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
