"""Channel selection: priority tiers, weighted random, exclusion, key rotation, mapping."""

from __future__ import annotations

import random
from collections import Counter

from veloera.accounts.v1 import accounts_pb2

from services.relay.routing.table import KeyRotator, RoutingTable, channel_from_proto

ENABLED = accounts_pb2.CHANNEL_STATUS_ENABLED
DISABLED = accounts_pb2.CHANNEL_STATUS_MANUALLY_DISABLED


def channel(
    cid: int, *, status: int = ENABLED, key: str = "k", **extra: object
) -> accounts_pb2.Channel:
    return accounts_pb2.Channel(id=cid, type=1, name=f"ch{cid}", status=status, key=key, **extra)  # type: ignore[arg-type]


def ability(
    cid: int,
    model: str = "gpt-4o",
    *,
    group: str = "default",
    priority: int = 0,
    weight: int = 0,
    enabled: bool = True,
) -> accounts_pb2.RoutingAbility:
    return accounts_pb2.RoutingAbility(
        group=group, model=model, channel_id=cid, priority=priority, weight=weight, enabled=enabled
    )


def table(
    channels: list[accounts_pb2.Channel], abilities: list[accounts_pb2.RoutingAbility]
) -> RoutingTable:
    snapshot = accounts_pb2.RoutingSnapshot(version=3, channels=channels, abilities=abilities)
    return RoutingTable.from_snapshot(snapshot)


def test_highest_priority_tier_wins() -> None:
    t = table([channel(1), channel(2)], [ability(1, priority=0), ability(2, priority=10)])
    picks = {t.select("default", "gpt-4o").id for _ in range(50)}  # type: ignore[union-attr]
    assert picks == {2}


def test_excluded_channels_fall_through_to_lower_tier() -> None:
    t = table(
        [channel(1), channel(2), channel(3)],
        [ability(1, priority=0), ability(2, priority=10), ability(3, priority=10)],
    )
    first = t.select("default", "gpt-4o", exclude={2})
    assert first is not None and first.id == 3
    second = t.select("default", "gpt-4o", exclude={2, 3})
    assert second is not None and second.id == 1
    assert t.select("default", "gpt-4o", exclude={1, 2, 3}) is None


def test_weights_are_smoothed_by_ten() -> None:
    # weights 0 and 30 become 10 and 40: a 1:4 split
    t = table([channel(1), channel(2)], [ability(1, weight=0), ability(2, weight=30)])
    rng = random.Random(7)
    counts = Counter(t.select("default", "gpt-4o", rng=rng).id for _ in range(5000))  # type: ignore[union-attr]
    assert 0.15 < counts[1] / 5000 < 0.25
    assert counts[1] + counts[2] == 5000


def test_disabled_channels_and_abilities_are_not_candidates() -> None:
    t = table(
        [channel(1, status=DISABLED), channel(2), channel(3)],
        [ability(1), ability(2, enabled=False), ability(3, model="other")],
    )
    assert t.select("default", "gpt-4o") is None
    assert t.models_for("default") == ("other",)


def test_unknown_model_or_group_has_no_candidate() -> None:
    t = table([channel(1)], [ability(1, group="vip")])
    assert t.select("default", "gpt-4o") is None
    assert t.select("vip", "nope") is None
    assert t.select("vip", "gpt-4o") is not None


def test_pinned_channel_must_exist_and_be_enabled() -> None:
    t = table([channel(1), channel(2, status=DISABLED)], [])
    assert t.pinned(1) is not None
    assert t.pinned(2) is None
    assert t.pinned(99) is None


def test_multi_key_channel_rotates_over_enabled_keys() -> None:
    keys = [
        accounts_pb2.ChannelKey(id=1, key="a", status=ENABLED),
        accounts_pb2.ChannelKey(id=2, key="b", status=DISABLED),
        accounts_pb2.ChannelKey(id=3, key="c", status=ENABLED),
    ]
    info = channel_from_proto(channel(1, keys=keys))
    rotator = KeyRotator()
    assert [rotator.pick(info)[1] for _ in range(4)] == ["a", "c", "a", "c"]


def test_joined_key_text_is_split_when_no_key_rows() -> None:
    info = channel_from_proto(channel(1, key="one,two\nthree"))
    assert [k for _, k in info.keys] == ["one", "two", "three"]


def test_channel_without_usable_key_is_skipped() -> None:
    t = table([channel(1, key="")], [ability(1)])
    assert t.select("default", "gpt-4o") is None


def test_model_mapping_and_channel_fields() -> None:
    info = channel_from_proto(
        channel(
            1,
            model_mapping='{"gpt-4o": "gpt-4o-2024-08-06"}',
            status_code_mapping='{"400": "500", "x": "y"}',
            param_override='{"temperature": 0.1}',
            setting='{"force_format": true, "stream_support": "NON_STREAM_ONLY"}',
            system_prompt="Be brief.",
            model_prefix=" google/ ",
        )
    )
    assert info.upstream_model("gpt-4o") == "gpt-4o-2024-08-06"
    assert info.upstream_model("gpt-4o-mini") == "gpt-4o-mini"
    assert info.base_url == ""  # the adaptor supplies the type's default
    assert info.status_code_mapping == {400: 500}
    assert info.param_override == {"temperature": 0.1}
    assert info.setting.force_format and info.setting.non_stream_only
    assert not info.setting.thinking_to_content
    assert info.system_prompt == "Be brief." and info.model_prefix == "google/"


def test_model_prefix_routing_and_listing() -> None:
    t = table(
        [channel(1, model_prefix="g/"), channel(2)],
        [ability(1, "gemini-pro"), ability(2, "gemini-pro")],
    )
    found = t.prefixed("default", "g/gemini-pro")
    assert found is not None
    stripped, pool = found
    assert stripped == "gemini-pro" and [c.channel.id for c in pool] == [1]
    assert t.prefixed("default", "gemini-pro") is None
    assert t.prefixed("default", "g/unknown") is None
    assert t.models_for("default") == ("g/gemini-pro", "gemini-pro")
    assert t.is_known_model("g/gemini-pro") and not t.is_known_model("nope")


def test_retry_start_tier_is_clamped_to_the_lowest() -> None:
    t = table(
        [channel(1), channel(2), channel(3)],
        [ability(1, priority=10), ability(2, priority=5), ability(3, priority=0)],
    )
    assert t.select("default", "gpt-4o", start_tier=1).id == 2  # type: ignore[union-attr]
    assert t.select("default", "gpt-4o", start_tier=7).id == 3  # type: ignore[union-attr]
    assert t.select("default", "gpt-4o", exclude={3}, start_tier=7) is None


def test_options_come_from_the_snapshot() -> None:
    snapshot = accounts_pb2.RoutingSnapshot(
        version=1,
        options=[
            accounts_pb2.Option(key="global.auto_retry_enabled", value="true"),
            accounts_pb2.Option(key="global.auto_retry_count", value="2"),
        ],
    )
    t = RoutingTable.from_snapshot(snapshot)
    assert t.options.auto_retry_enabled and t.options.auto_retry_count == 2


def test_invalid_model_mapping_is_ignored() -> None:
    info = channel_from_proto(channel(1, model_mapping="{not json"))
    assert info.upstream_model("gpt-4o") == "gpt-4o"


def test_a_channel_type_without_an_adaptor_is_never_routed() -> None:
    palm = accounts_pb2.Channel(id=9, type=11, name="palm", status=ENABLED, key="palm-key")
    t = table([palm], [ability(9)])
    assert t.select("default", "gpt-4o") is None and t.pinned(9) is None
    assert t.channels[9].keys == ()  # its key is not even held
    assert t.lists("gpt-4o") and not t.lists("nobody-serves-this")


def test_literal_private_addresses_are_marked() -> None:
    t = table(
        [
            channel(1, base_url="http://10.0.0.8"),
            channel(
                2, base_url="https://api.example.com", setting='{"proxy": "http://[::1]:3128"}'
            ),
            channel(3, base_url="https://api.example.com"),
        ],
        [],
    )
    assert [t.channels[i].private_target for i in (1, 2, 3)] == [True, True, False]
