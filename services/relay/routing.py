"""Local channel selection from a routing snapshot: priority tiers, weighted random, key rotation.

Pure logic: built from an accounts.v1.RoutingSnapshot, no I/O.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from veloera.accounts.v1 import accounts_pb2

from services.relay.options import RelayOptions
from services.shared.addresses import url_is_private
from services.shared.channel_types import is_supported

logger = logging.getLogger(__name__)

CHANNEL_ENABLED = accounts_pb2.CHANNEL_STATUS_ENABLED
SMOOTHING = 10  # added to every weight, so weight 0 still gets picked (reference §3.4 step 8)
NON_STREAM_ONLY = "NON_STREAM_ONLY"


@dataclass(frozen=True, slots=True)
class ChannelSetting:
    """The channel's `setting` JSON (reference §5.2)."""

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


Tier = tuple[Candidate, ...]


GIZMO_PREFIXES = ("gpt-4-gizmo", "gpt-4o-gizmo")


def routing_name(model: str) -> str:
    """The name abilities list a model under: GPTs (`gpt-4-gizmo-*`, `gpt-4o-gizmo-*`) collapse
    to their wildcard entry (reference §3.4 step 8)."""
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
        base_url=channel.base_url,
        status=channel.status,
        priority=channel.priority,
        weight=channel.weight,
        keys=keys,
        model_mapping=_parse_mapping(channel.id, channel.model_mapping),
        system_prompt=channel.system_prompt,
        param_override=_json_object(channel.id, "param_override", channel.param_override),
        status_code_mapping=_parse_status_mapping(channel.id, channel.status_code_mapping),
        setting=setting,
        model_prefix=channel.model_prefix.strip(),
        other=channel.other,
        organization=channel.openai_organization,
        created_time=channel.created_time,
        private_target=url_is_private(channel.base_url) or url_is_private(setting.proxy),
    )


class RoutingTable:
    """An immutable index of one snapshot version: (group, model) → priority tiers."""

    __slots__ = (
        "_all_models",
        "_listed",
        "_models",
        "_prefixes",
        "_tiers",
        "channels",
        "options",
        "version",
    )

    def __init__(
        self,
        version: int,
        channels: Iterable[ChannelInfo],
        abilities: Iterable[accounts_pb2.RoutingAbility],
        options: RelayOptions | None = None,
    ) -> None:
        self.version = version
        self.options = options or RelayOptions()
        self.channels = {c.id: c for c in channels}
        by_key: dict[tuple[str, str], dict[int, list[Candidate]]] = defaultdict(
            lambda: defaultdict(list)
        )
        seen: set[tuple[str, str, int]] = set()
        listed: set[str] = set()
        for ability in abilities:
            listed.add(ability.model)
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
        # (group, prefix) -> stripped model -> the prefix channels serving it, weighted
        prefixes: dict[tuple[str, str], dict[str, list[Candidate]]] = defaultdict(
            lambda: defaultdict(list)
        )
        models: dict[str, set[str]] = defaultdict(set)
        for (group, model), tiers in self._tiers.items():
            models[group].add(model)
            for tier in tiers:
                for candidate in tier:
                    prefix = candidate.channel.model_prefix
                    if prefix:
                        prefixes[(group, prefix)][model].append(candidate)
                        models[group].add(prefix + model)
        self._prefixes = {
            key: {model: tuple(pool) for model, pool in by_model.items()}
            for key, by_model in prefixes.items()
        }
        self._models = {group: tuple(sorted(names)) for group, names in models.items()}
        self._all_models = frozenset(name for names in models.values() for name in names)
        self._listed = frozenset(listed) | self._all_models  # disabled channels' models too

    def lists(self, model: str) -> bool:
        """Some channel, enabled or not, in any group, lists `model` (else: model_not_found)."""
        return model in self._listed or routing_name(model) in self._listed

    @classmethod
    def from_snapshot(cls, snapshot: accounts_pb2.RoutingSnapshot) -> RoutingTable:
        channels = [channel_from_proto(c) for c in snapshot.channels]
        options = RelayOptions.parse({o.key: o.value for o in snapshot.options})
        return cls(snapshot.version, channels, snapshot.abilities, options)

    def models_for(self, group: str) -> tuple[str, ...]:
        return self._models.get(group, ())

    def prefixed(self, group: str, model: str) -> tuple[str, tuple[Candidate, ...]] | None:
        """(stripped model, prefix channels serving it) when `model` starts with a known
        channel prefix of this group; the longest prefix wins."""
        best: tuple[str, tuple[Candidate, ...]] | None = None
        best_len = 0
        for (g, prefix), by_model in self._prefixes.items():
            if g != group or len(prefix) <= best_len or not model.startswith(prefix):
                continue
            stripped = model[len(prefix) :]
            pool = by_model.get(stripped)
            if pool:
                best, best_len = (stripped, pool), len(prefix)
        return best

    def is_known_model(self, model: str) -> bool:
        """A model some channel serves (bounded: safe as a metrics label)."""
        return model in self._all_models

    def pinned(self, channel_id: int) -> ChannelInfo | None:
        channel = self.channels.get(channel_id)
        return channel if channel is not None and channel.enabled else None

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
        tiers = self._tiers.get((group, model)) or self._tiers.get((group, routing_name(model)))
        if tiers is None:
            return None
        if start_tier:
            tiers = tiers[min(start_tier, len(tiers) - 1) :]
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
