"""Relay quirks of upstream `middleware/distributor.go` and `relay/relay-text.go`: Azure dots, gizmo
wildcards, Responses URLs and events,
and what the log rows carry (error rows, chat content)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.relay.adaptors import Adaptors
from services.relay.adaptors.base import Outgoing, Target
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.billing.charge import Charge
from services.relay.endpoints import CHAT, COMPLETIONS, RESPONSES, Endpoint
from services.relay.errorlog import error_entry
from services.relay.incoming import ClientRequest
from services.relay.job import Job
from services.relay.metering.content import chat_content
from services.relay.metering.meter import Metering
from services.relay.options import RelayOptions
from services.relay.routing.table import ChannelInfo, RoutingTable, routing_name
from services.relay.upstream.streaming import SSEProcessor
from tests.support.relay_auth import entry

ADAPTORS = Adaptors(azure_api_version="2099-01-01")
BEFORE_CUTOFF = 1_700_000_000  # 2023-11
AFTER_CUTOFF = 1_760_000_000  # 2025-10


def channel(type_: int, base_url: str, **extra: Any) -> ChannelInfo:
    return ChannelInfo(7, type_, "c7", base_url, 1, 0, 0, ((1, "sk-up"),), **extra)


def url_of(info: ChannelInfo, model: str, endpoint: Endpoint = CHAT) -> str:
    target = Target(info, "sk-up", model, endpoint, False)
    adaptor = ADAPTORS.for_type(info.type)
    return adaptor.build_request(target, Outgoing(json={"model": model})).url


# ---------------------------------------------------------------- Azure deployment names


@pytest.mark.parametrize(
    ("created", "deployment"),
    [(BEFORE_CUTOFF, "gpt-35-turbo"), (AFTER_CUTOFF, "gpt-3.5-turbo"), (0, "gpt-3.5-turbo")],
)
def test_azure_drops_dots_only_for_channels_created_before_2025_05_10(
    created: int, deployment: str
) -> None:
    info = channel(3, "https://x.openai.azure.com", created_time=created)
    assert url_of(info, "gpt-3.5-turbo") == (
        f"https://x.openai.azure.com/openai/deployments/{deployment}/chat/completions"
        "?api-version=2099-01-01"
    )


def test_channel_created_time_comes_from_the_snapshot() -> None:
    proto = accounts_pb2.Channel(
        id=1,
        type=3,
        name="az",
        status=accounts_pb2.CHANNEL_STATUS_ENABLED,
        key="k",
        created_time=42,
    )
    snapshot = accounts_pb2.RoutingSnapshot(version=1, channels=[proto])
    assert RoutingTable.from_snapshot(snapshot).channels[1].created_time == 42


# ---------------------------------------------------------------- gizmo wildcards


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4-gizmo-g-abc123", "gpt-4-gizmo-*"),
        ("gpt-4o-gizmo-g-xyz", "gpt-4o-gizmo-*"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4", "gpt-4"),
    ],
)
def test_routing_name_collapses_gizmo_models(model: str, name: str) -> None:
    assert routing_name(model) == name


def test_gizmo_models_route_through_the_wildcard_ability() -> None:
    channels = [
        accounts_pb2.Channel(
            id=1, type=1, name="a", status=accounts_pb2.CHANNEL_STATUS_ENABLED, key="k"
        ),
        accounts_pb2.Channel(
            id=2, type=1, name="b", status=accounts_pb2.CHANNEL_STATUS_ENABLED, key="k"
        ),
    ]
    abilities = [
        accounts_pb2.RoutingAbility(group="default", model="gpt-4-gizmo-*", channel_id=1),
        accounts_pb2.RoutingAbility(group="default", model="gpt-4o-gizmo-*", channel_id=2),
    ]
    snapshot = accounts_pb2.RoutingSnapshot(version=1, channels=channels, abilities=abilities)
    for ability in snapshot.abilities:
        ability.enabled = True
    table = RoutingTable.from_snapshot(snapshot)
    first = table.select("default", "gpt-4-gizmo-g-123")
    second = table.select("default", "gpt-4o-gizmo-g-456")
    assert first is not None and first.id == 1
    assert second is not None and second.id == 2
    assert table.select("default", "gpt-4-turbo") is None
    assert table.select("default", "gpt-4-gizmo-g-123", exclude=[1]) is None


# ---------------------------------------------------------------- Responses URL and events


@pytest.mark.parametrize(
    ("base_url", "endpoint", "url"),
    [
        ("https://gw.example/api/", RESPONSES, "https://gw.example/api/responses"),
        ("https://gw.example/api", RESPONSES, "https://gw.example/api/v1/responses"),
        ("https://gw.example/api/", CHAT, "https://gw.example/api/v1/chat/completions"),
    ],
)
def test_trailing_slash_skips_v1_only_for_responses(
    base_url: str, endpoint: Endpoint, url: str
) -> None:
    assert url_of(channel(1, base_url), "gpt-4o", endpoint) == url


def test_responses_streams_keep_event_lines() -> None:
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False, keep_events=True)
    delta = orjson.dumps({"type": "response.output_text.delta", "delta": "Hi"})
    out = proc.feed(b"event: response.output_text.delta\r\ndata: " + delta + b"\n\n")
    assert out == b"event: response.output_text.delta\ndata: " + delta + b"\n\n"
    assert proc.acc.text == "Hi"


def test_chat_streams_drop_event_lines() -> None:
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    chunk = orjson.dumps({"choices": [{"index": 0, "delta": {"content": "x"}}]})
    assert proc.feed(b"event: message\ndata: " + chunk + b"\n\n") == b"data: " + chunk + b"\n\n"


# ---------------------------------------------------------------- log options and rows


def test_log_options_are_off_unless_set() -> None:
    assert not RelayOptions.parse({}).log_error
    assert not RelayOptions.parse({}).log_chat_content
    parsed = RelayOptions.parse({"LogErrorEnabled": "true", "LogChatContentEnabled": "true"})
    assert parsed.log_error and parsed.log_chat_content


def request(endpoint: Endpoint, payload: dict[str, Any]) -> ClientRequest:
    return ClientRequest(endpoint=endpoint, model="m", raw=b"", payload=payload)


def test_chat_content_splits_input_context_and_system_prompt() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]},
    ]
    assert chat_content(request(CHAT, {"messages": messages}), "the answer") == {
        "input_content": "second",
        "output_content": "the answer",
        "context": "user: first question\nassistant: first answer",
        "system_prompt": "Be brief.",
    }


def test_chat_content_of_responses_and_completions() -> None:
    responses = request(RESPONSES, {"input": "hello", "instructions": "You are a pirate."})
    assert chat_content(responses, "arr") == {
        "input_content": "hello",
        "output_content": "arr",
        "context": "",
        "system_prompt": "You are a pirate.",
    }
    assert chat_content(request(COMPLETIONS, {"prompt": "Say hi"}), "hi")["input_content"] == (
        "Say hi"
    )


def job(*, log_ip: bool = False) -> Job:
    auth = entry(
        token={"name": "tok", "id": 5},
        user={"username": "ann", "setting": '{"show_ip_in_logs": true}' if log_ip else ""},
    )
    return Job(
        request_id="req-1",
        started=time.perf_counter(),
        entry=auth,
        req=ClientRequest(endpoint=CHAT, model="m-1", raw=b"", stream=True),
        options=RelayOptions(),
        meter=Metering(),
        routing_model="m-1",
        client_ip="10.0.0.9",
        pinned=False,
        charge=Charge(Unbilled(), "req-1"),
        tried=[3, 7],
    )


class Unbilled:
    """A job's billing where no test here settles or releases anything."""

    def settle_later(self, request: billing_pb2.SettleRequest) -> None:
        raise AssertionError("not settled in these tests")

    def release_later(self, request_id: str, reason: str) -> None:
        raise AssertionError("not released in these tests")


def test_error_entry_carries_the_error_and_the_channel() -> None:
    row = error_entry(
        job(),
        channel(1, "https://up.example"),
        status=502,
        type_="upstream_error",
        code="bad_response_status_code",
        message="fake upstream error 502",
    )
    assert row.type == billing_pb2.LOG_TYPE_ERROR
    assert (row.user_id, row.username, row.token_name, row.token_id) == (2, "ann", "tok", 5)
    assert (row.model_name, row.channel_id, row.channel_name) == ("m-1", 7, "c7")
    assert row.content == "fake upstream error 502"
    assert row.is_stream and row.request_id == "req-1"
    assert row.client_ip == ""  # the user did not opt in
    assert orjson.loads(row.other) == {
        "error_type": "upstream_error",
        "error_code": "bad_response_status_code",
        "status_code": 502,
        "channel_id": 7,
        "channel_name": "c7",
        "channel_type": 1,
        "admin_info": {"use_channel": [3, 7]},
    }
    assert error_entry(
        job(log_ip=True), None, status=500, type_="t", code="", message="m"
    ).client_ip == ("10.0.0.9")
