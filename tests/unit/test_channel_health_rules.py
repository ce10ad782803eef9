"""Pure rules of channel health: the test verdict (upstream `controller/channel-test.go`), the
test request, and reading providers' model lists and balances."""

from __future__ import annotations

from typing import Any

import pytest
from veloera.accounts.v1 import accounts_pb2

from services.accounts.channel_rules import Failure, judge_test, parse_threshold
from services.relay.health import probe
from services.relay.routing.table import channel_from_proto

KEYWORDS = ["you exceeded your current quota"]


def _failure(status: int, message: str = "boom", **fields: Any) -> Failure:
    base = {"error_type": "", "error_code": "", "local_error": False}
    return Failure(channel_type=1, status_code=status, error_message=message, **{**base, **fields})


def _judge(failure: Failure | None, *, ms: int = 100, **flags: Any) -> Any:
    values = {
        "threshold_seconds": 5.0, "keywords": KEYWORDS, "auto_disable": True,
        "auto_enable": True, "key_enabled": True, "key_auto_disabled": False, **flags,
    }  # fmt: skip
    return judge_test(failure, response_ms=ms, **values)


def test_a_key_killing_failure_disables_a_transient_one_does_not() -> None:
    assert _judge(_failure(401)).disable_key
    assert _judge(_failure(429, "You exceeded your current quota!")).disable_key
    assert not _judge(_failure(502)).disable_key
    assert not _judge(_failure(401, local_error=True)).disable_key


def test_a_slow_answer_disables_even_when_it_succeeded() -> None:
    verdict = _judge(None, ms=5001)
    assert verdict.disable_key and verdict.too_slow and "above 5.00s" in verdict.reason
    assert not _judge(None, ms=5000).too_slow
    assert not _judge(None, ms=10**9, threshold_seconds=0).too_slow  # 0: no limit


def test_switches_and_hand_disabled_keys_are_respected() -> None:
    assert not _judge(_failure(401), auto_disable=False).disable_key
    assert not _judge(_failure(401), key_enabled=False).disable_key
    back = {"key_enabled": False, "key_auto_disabled": True}
    assert _judge(None, **back).enable_key
    assert not _judge(None, auto_enable=False, **back).enable_key
    assert not _judge(None, ms=9000, **back).enable_key  # a slow pass is no pass
    assert not _judge(_failure(502), **back).enable_key


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 5.0), ("0.5", 0.5), ("0", 0.0), ("x", 5.0), ("-1", 5.0)]
)
def test_threshold_option(value: str | None, seconds: float) -> None:
    assert parse_threshold(value) == seconds


def test_the_test_model_and_body_follow_upstream() -> None:
    channel = accounts_pb2.Channel(type=1, models=["first", "second"], test_model="")
    assert probe.pick_test_model(channel) == "first"
    assert probe.pick_test_model(channel, "chosen") == "chosen"
    channel.test_model = "tested"
    assert probe.pick_test_model(channel) == "tested"
    assert probe.pick_test_model(accounts_pb2.Channel()) == "gpt-4o-mini"

    endpoint, body = probe.build_test_body("bge-m3", 1)
    assert endpoint.path == "/v1/embeddings" and body["input"] == "hello world"
    assert probe.build_test_body("o3-mini", 1)[1]["max_completion_tokens"] == 10
    assert probe.build_test_body("gemini-2.0-flash", 24)[1]["max_tokens"] == 300
    assert probe.build_test_body("claude-thinking", 1)[1]["max_tokens"] == 50
    assert probe.build_test_body("gpt-4o", 1)[1]["max_tokens"] == 10


def test_model_lists_and_balances_are_read_strictly() -> None:
    listed = {"data": [{"id": "models/gemini-pro"}, {"id": "gpt-4o"}, {"id": "gpt-4o"}, {}]}
    assert probe._model_ids(listed) == ["gemini-pro", "gpt-4o"]
    with pytest.raises(probe.ProbeError):
        probe._model_ids({"data": "nope"})
    infos = [
        {"currency": "CNY", "total_balance": "70"},
        {"currency": "USD", "total_balance": "9.5"},
    ]
    assert probe._deepseek_balance({"balance_infos": infos}) == 9.5
    with pytest.raises(probe.ProbeError):
        probe._deepseek_balance({"balance_infos": [{"currency": "EUR", "total_balance": "1"}]})
    for bad in (True, "NaN", "x", None):
        with pytest.raises(probe.ProbeError):
            probe._number({"total": bad}, "total")


@pytest.mark.parametrize(
    ("type_id", "base_url", "url", "auth"),
    [
        (1, "", "https://api.openai.com/v1/models", ("authorization", "Bearer k1")),
        (17, "", "https://dashscope.aliyuncs.com/compatible-mode/v1/models",
         ("authorization", "Bearer k1")),
        (49, "", "https://models.github.ai/catalog/models", ("authorization", "Bearer k1")),
        (14, "", "https://api.anthropic.com/v1/models", ("x-api-key", "k1")),
        (24, "https://g.example/", "https://g.example/v1beta/openai/models",
         ("authorization", "Bearer k1")),
    ],
)  # fmt: skip
def test_each_type_lists_its_models_where_its_provider_does(
    type_id: int, base_url: str, url: str, auth: tuple[str, str]
) -> None:
    channel = accounts_pb2.Channel(type=type_id, base_url=base_url, key="k1\nk2")
    got_url, headers = probe._models_request(
        channel, channel_from_proto(channel), probe.first_key(channel)
    )
    assert got_url == url
    assert {k.lower(): v for k, v in headers.items()}[auth[0]] == auth[1]
