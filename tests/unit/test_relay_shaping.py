"""Request shaping, relay options and the retry policy (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from services.relay.options import RelayOptions, StatusCodes, parse_global_mapping
from services.relay.routing.retry import map_status, retry_budget, should_retry, start_tier
from services.relay.routing.table import ChannelInfo
from services.relay.upstream.shaping import (
    apply_o_series,
    apply_param_override,
    apply_stream_options,
    apply_system_prompt,
    split_effort,
)
from services.shared.sensitive import SensitiveMatcher, invalid_patterns, text_fields


def test_system_prompt_goes_before_the_first_system_message() -> None:
    body: dict[str, Any] = {"messages": [{"role": "system", "content": "B"}, {"role": "user"}]}
    original = body["messages"]
    apply_system_prompt(body, "A")
    assert body["messages"][0] == {"role": "system", "content": "A\n\nB"}
    assert original[0]["content"] == "B"  # the client's objects are not mutated
    body = {"messages": [{"role": "user", "content": "hi"}]}
    apply_system_prompt(body, "A")
    assert body["messages"] == [
        {"role": "system", "content": "A"},
        {"role": "user", "content": "hi"},
    ]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("o3-mini-high", ("o3-mini", "high")),
        ("o1-low", ("o1", "low")),
        ("o4-mini-medium", ("o4-mini", "medium")),
        ("gpt-4o-high", ("gpt-4o-high", "")),
        ("o3-mini", ("o3-mini", "")),
    ],
)
def test_effort_suffixes_only_for_o_series(model: str, expected: tuple[str, str]) -> None:
    assert split_effort(model) == expected


def test_o_series_body_rules() -> None:
    body: dict[str, Any] = {
        "max_tokens": 10,
        "temperature": 0.2,
        "messages": [{"role": "system", "content": "s"}],
    }
    apply_o_series(body, "o1-mini", "low")
    assert body == {
        "max_completion_tokens": 10,
        "reasoning_effort": "low",
        "messages": [{"role": "developer", "content": "s"}],
    }
    other: dict[str, Any] = {"max_tokens": 10, "temperature": 0.2}
    apply_o_series(other, "gpt-4o", "")
    assert other == {"max_tokens": 10, "temperature": 0.2}


def test_stream_options_per_channel_type() -> None:
    body: dict[str, Any] = {"stream_options": {"include_usage": False}}
    apply_stream_options(body, stream=True, channel_type=1, supports=True, force=True)
    assert body["stream_options"] == {"include_usage": True}
    body = {"stream_options": {"include_usage": True}}
    apply_stream_options(body, stream=True, channel_type=25, supports=False, force=True)
    assert "stream_options" not in body
    body = {"stream_options": {"include_usage": True}}
    apply_stream_options(body, stream=False, channel_type=1, supports=True, force=True)
    assert "stream_options" not in body
    body = {}
    apply_stream_options(body, stream=True, channel_type=1, supports=True, force=False)
    assert body == {}


def test_param_override_is_a_shallow_merge() -> None:
    channel = ChannelInfo(1, 1, "c", "", 1, 0, 0, (), param_override={"top_p": 1, "n": 2})
    body: dict[str, Any] = {"top_p": 0.5, "model": "m"}
    apply_param_override(body, channel)
    assert body == {"top_p": 1, "n": 2, "model": "m"}


def test_status_code_lists() -> None:
    codes = StatusCodes.parse("5xx, 429 ,bad")
    assert codes.matches(503) and codes.matches(429) and not codes.matches(404)


def test_sensitive_regexes_work_without_plain_words() -> None:
    matcher = SensitiveMatcher.parse("regex:secret\\d+\n/bad[-_]?word/\n(broken")
    assert matcher.words == ("(broken",)
    assert matcher.find("my SECRET42 here") == "secret42"
    assert matcher.find("a BAD_WORD") == "bad_word"
    only_regex = SensitiveMatcher.parse("regex:x{3}")
    assert only_regex and only_regex.find("axxxb") == "xxx"
    assert SensitiveMatcher.parse("regex:(").find("(") is None  # invalid regex dropped
    assert not SensitiveMatcher.parse("")


def test_a_backtracking_pattern_runs_in_linear_time_or_is_refused() -> None:
    catastrophic = SensitiveMatcher.parse("regex:^(a+)+$")
    assert catastrophic.find("a" * 27 + "!") is None  # Python's re takes seconds here
    assert catastrophic.find("a" * 28) == "a" * 28
    assert invalid_patterns("word\nregex:(a)\\1\n/(?=x)y/\nregex:ok+") == ["(a)\\1", "(?=x)y"]
    assert SensitiveMatcher.parse("regex:(a)\\1").find("aa") is None  # dropped, not crashing


def test_sensitive_words_survive_width_case_and_invisible_characters() -> None:
    matcher = SensitiveMatcher.parse("forbidden\nregex:bad\\s*thing")
    assert matcher.find("ｆｏｒｂｉｄｄｅｎ") == "forbidden"  # full-width
    assert matcher.find("FOR\u200bBID\u200dDEN") == "forbidden"  # zero-width inside
    assert matcher.find("ＢＡＤ thing") == "bad thing"
    assert matcher.find("allowed text") is None


def test_every_text_field_is_read() -> None:
    payload = {
        "model": "m",
        "messages": [
            {"role": "user", "name": "n-forbidden", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "tool_calls": [{"function": {"arguments": '{"q": "x"}'}}]},
        ],
        "tools": [{"type": "function", "function": {"description": "tool desc"}}],
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "resp in"}]}],
        "image": "data:image/png;base64,AAAA",
    }
    texts = text_fields(payload)
    assert texts == ["n-forbidden", "hi", '{"q": "x"}', "tool desc", "resp in"]
    matcher = SensitiveMatcher.parse("regex:^(tool desc|hi)$")
    assert matcher.find_in(texts) == "hi"  # each field on its own


def test_sensitive_exemption_by_group() -> None:
    options = RelayOptions.parse(
        {
            "SensitiveWords": "x",
            "global.safe_check_exempt_enabled": "true",
            "global.safe_check_exempt_group": "vip",
        }
    )
    assert options.sensitive_applies("default") and not options.sensitive_applies("vip")
    off = RelayOptions.parse({"SensitiveWords": "x", "CheckSensitiveOnPromptEnabled": "false"})
    assert not off.sensitive_applies("default")


def test_global_mapping_keeps_the_highest_priorities() -> None:
    text = (
        '{"mapping": {"v": [{"model": "a", "priorities": 1}, {"model": "b", "priorities": 5},'
        ' {"model": "c", "priorities": 5}], "bad": 3}}'
    )
    assert parse_global_mapping(text) == {"v": ("b", "c")}
    assert parse_global_mapping("{not json") == {}


def test_retry_policy_with_and_without_auto_retry() -> None:
    legacy = RelayOptions()
    assert retry_budget(legacy, 1, pinned=False) == 1
    assert retry_budget(legacy, 1, pinned=True) == 0
    assert should_retry(legacy, 500) and should_retry(legacy, 429) and should_retry(legacy, 401)
    assert not should_retry(legacy, 400) and not should_retry(legacy, 504)
    assert not should_retry(legacy, 408) and should_retry(legacy, 200, empty=True)

    auto = RelayOptions.parse(
        {
            "global.auto_retry_enabled": "true",
            "global.auto_retry_count": "4",
            "global.auto_retry_status_codes": "5xx",
            "global.auto_retry_force_channel_switch": "true",
        }
    )
    assert retry_budget(auto, 1, pinned=False) == 4
    assert should_retry(auto, 502) and not should_retry(auto, 429) and not should_retry(auto, 504)
    assert should_retry(auto, 0, empty=True)
    assert start_tier(auto, 1) == 2 and start_tier(legacy, 1) == 1
    assert map_status({400: 503}, 400) == 503 and map_status({}, 400) == 400


def test_reverse_proxy_option() -> None:
    assert RelayOptions.parse({"ReverseProxyProvider": "nginx"}).reverse_proxy == ""
    options = RelayOptions.parse(
        {"ReverseProxyEnabled": "true", "ReverseProxyProvider": "cloudflare"}
    )
    assert options.reverse_proxy == "cloudflare"
