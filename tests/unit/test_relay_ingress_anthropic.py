"""Anthropic Messages ingress: request, answer, stream and error conversions (pure functions),
each answer checked against the official `anthropic` SDK's own types."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from services.relay.adaptors.base import UsageCounts
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT
from services.relay.errors import RelayError
from services.relay.ingress import anthropic
from services.relay.upstream.streaming import SSEProcessor

EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
USAGE = UsageCounts(prompt_tokens=12, completion_tokens=7)


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return {**base, **fields}


def parse_events(frames: bytes) -> list[dict[str, Any]]:
    """Each frame's `event:` line must name its data's type; every event must be one the
    SDK knows."""
    events: list[dict[str, Any]] = []
    for frame in frames.decode().split("\n\n"):
        if not frame:
            continue
        kind_line, data_line = frame.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert kind_line == f"event: {data['type']}"
        if data["type"] != "ping":
            EVENTS.validate_python(data)
        events.append(data)
    return events


# ---------------------------------------------------------------------- request


def test_system_prompts_text_and_sampling_become_a_chat_request() -> None:
    chat = anthropic.to_chat(
        body(
            system=[{"type": "text", "text": "be brief"}, {"type": "text", "text": "be kind"}],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                {"role": "assistant", "content": "c"},
                {"role": "user", "content": "d"},
            ],
            stop_sequences=["END"],
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            metadata={"user_id": "u-1"},
            stream=True,
        )
    )
    assert chat == {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [
            {"role": "system", "content": "be brief\nbe kind"},
            {"role": "user", "content": "a\nb"},
            {"role": "assistant", "content": "c"},
            {"role": "user", "content": "d"},
        ],
        "stop": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_images_base64_and_url_become_image_parts() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.example/a.jpg"}},
    ]
    chat = anthropic.to_chat(body(messages=[{"role": "user", "content": content}]))
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                {"type": "image_url", "image_url": {"url": "https://x.example/a.jpg"}},
            ],
        }
    ]


def test_tools_tool_use_and_tool_results_become_functions_tool_calls_and_tool_messages() -> None:
    chat = anthropic.to_chat(
        body(
            tools=[
                {
                    "name": "get_weather",
                    "description": "weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
                {"type": "web_search_20250305", "name": "web_search"},  # server tool: no twin
            ],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            messages=[
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                        {
                            "type": "tool_use",
                            "id": "toolu_2",
                            "name": "get_weather",
                            "input": {"city": "Rome"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "content": [{"type": "text", "text": "rain"}],
                            "is_error": False,
                        },
                        {"type": "text", "text": "thanks"},
                    ],
                },
            ],
        )
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "description": "weather",
            },
        }
    ]
    assert chat["tool_choice"] == "required"
    assert chat["parallel_tool_calls"] is False
    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "rain"},
        {"role": "user", "content": "thanks"},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    assert anthropic.to_chat(body(tools=tools, tool_choice=choice))["tool_choice"] == expected


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        (None, ""),
        ({"type": "disabled"}, ""),
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 10000}, "medium"),
        ({"type": "enabled", "budget_tokens": 32000}, "high"),
    ],
)
def test_thinking_budget_becomes_a_reasoning_effort(thinking: Any, effort: str) -> None:
    req = anthropic.parse(orjson.dumps(body(thinking=thinking)))
    assert req.reasoning_effort == effort
    assert "thinking" not in req.payload and "reasoning_effort" not in req.payload


@pytest.mark.parametrize(("asked", "effort"), [("low", "low"), ("high", "high"), ("max", "high")])
def test_output_config_effort_wins_over_the_thinking_budget(asked: str, effort: str) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    req = anthropic.parse(orjson.dumps(body(thinking=thinking, output_config={"effort": asked})))
    assert req.reasoning_effort == effort


def test_output_format_becomes_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    config = {"format": {"type": "json_schema", "schema": schema}}
    chat = anthropic.to_chat(body(output_config=config))
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def test_parse_gives_the_canonical_chat_request_with_the_hold_limit() -> None:
    req = anthropic.parse(orjson.dumps(body(stream=True, max_tokens=321)))
    assert req.endpoint is CHAT and req.model == "claude-x"
    assert req.max_tokens == 321 and req.stream and not req.include_usage
    assert orjson.loads(req.raw) == req.payload  # pass-through sends the canonical body
    assert req.egress is not None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": "9"}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"model": None}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "messages",
        ),
        ({"system": 5}, "system"),
        ({"tools": [{"input_schema": {}}]}, "tools"),
        ({"stop_sequences": "END"}, "stop_sequences"),
    ],
)
def test_bad_input_is_a_400(fields: dict[str, Any], param: str) -> None:
    payload = {k: v for k, v in body(**fields).items() if v is not None}
    with pytest.raises(RelayError) as caught:
        anthropic.parse(orjson.dumps(payload))
    assert caught.value.status == 400 and caught.value.param == param


def test_count_tokens_body_needs_no_max_tokens() -> None:
    req = anthropic.parse_count(
        orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    )
    assert req.payload["messages"] == [{"role": "user", "content": "hi"}]


# ---------------------------------------------------------------------- answer


def completion(message: dict[str, Any], finish: str, **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7},
    }


def message(reply: dict[str, Any], **egress: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"model": "claude-x", "thinking": False, "stop_sequences": []}
    data = anthropic.AnthropicEgress(**{**options, **egress}).reply(reply, USAGE)
    parsed: dict[str, Any] = orjson.loads(data)
    Message.model_validate(parsed)
    return parsed


def test_text_reply_becomes_a_message() -> None:
    out = message(completion({"role": "assistant", "content": "Hello"}, "stop"))
    assert out["type"] == "message" and out["role"] == "assistant"
    assert out["id"].startswith("msg_") and out["model"] == "claude-x"
    assert out["content"] == [{"type": "text", "text": "Hello"}]
    assert (out["stop_reason"], out["stop_sequence"]) == ("end_turn", None)
    assert out["usage"] == {
        "input_tokens": 12,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def test_tool_calls_become_tool_use_blocks() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "not json"}},
    ]
    out = message(
        completion({"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls")
    )
    assert out["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish", "choice", "expected"),
    [
        ("stop", {}, ("end_turn", None)),
        ("length", {}, ("max_tokens", None)),
        ("content_filter", {}, ("refusal", None)),
        ("stop", {"stop_reason": "END"}, ("stop_sequence", "END")),
        ("stop", {"stop_reason": "OTHER"}, ("end_turn", None)),
    ],
)
def test_stop_reasons(finish: str, choice: dict[str, Any], expected: tuple[str, Any]) -> None:
    out = message(
        completion({"role": "assistant", "content": "x"}, finish, **choice), stop_sequences=["END"]
    )
    assert (out["stop_reason"], out["stop_sequence"]) == expected


def test_reasoning_is_a_thinking_block_only_when_thinking_was_asked_for() -> None:
    reply = completion({"role": "assistant", "content": "4", "reasoning_content": "2+2"}, "stop")
    assert [b["type"] for b in message(reply)["content"]] == ["text"]
    assert message(reply, thinking=True)["content"][0] == {
        "type": "thinking",
        "thinking": "2+2",
        "signature": "",
    }


def test_cached_prompt_tokens_are_reported_as_cache_reads() -> None:
    usage = UsageCounts(prompt_tokens=100, completion_tokens=5, cached_tokens=60)
    assert anthropic.usage_block(usage)["input_tokens"] == 40
    assert anthropic.usage_block(usage)["cache_read_input_tokens"] == 60


# ---------------------------------------------------------------------- stream


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def stream(
    chunks: list[dict[str, Any]], *, cut: bool = False, thinking: bool = False
) -> list[dict[str, Any]]:
    egress = anthropic.AnthropicEgress(model="claude-x", thinking=thinking, stop_sequences=[])
    events = egress.stream(prompt_tokens=12)
    frames = b"".join(events.chunk(c) for c in chunks) + events.end(USAGE, cut=cut)
    return parse_events(frames)


def test_text_stream_is_anthropics_event_sequence() -> None:
    events = stream(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
        ]
    )
    assert [e["type"] for e in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]["message"]
    assert start["role"] == "assistant" and start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 12
    assert events[2] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert [e["delta"]["text"] for e in events[3:5]] == ["Hel", "lo"]
    assert events[6]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[6]["usage"]["output_tokens"] == 7


def test_streamed_tool_calls_become_tool_use_blocks_with_input_json_deltas() -> None:
    def call(index: int, *, id_: str = "", name: str = "", arguments: str = "") -> dict[str, Any]:
        item: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if id_:
            item.update(id=id_, type="function")
            item["function"]["name"] = name
        return item

    events = stream(
        [
            chunk({"content": "Let me check."}),
            chunk({"tool_calls": [call(0, id_="call_a", name="f")]}),
            chunk({"tool_calls": [call(0, arguments='{"ci')]}),
            chunk({"tool_calls": [call(0, arguments='ty": "Paris"}')]}),
            chunk({"tool_calls": [call(1, id_="call_b", name="g", arguments="{}")]}),
            chunk({}, "tool_calls"),
        ]
    )
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [s["content_block"] for s in starts] == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "call_a", "name": "f", "input": {}},
        {"type": "tool_use", "id": "call_b", "name": "g", "input": {}},
    ]
    json_parts = [
        (e["index"], e["delta"]["partial_json"])
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    ]
    assert json_parts == [(1, '{"ci'), (1, 'ty": "Paris"}'), (2, "{}")]
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0, 1, 2]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_tool_call_ids_repeated_on_every_delta_or_shared_indexes_keep_blocks_apart() -> None:
    def call(id_: str, arguments: str, name: str = "f") -> dict[str, Any]:
        function = {"name": name, "arguments": arguments}
        return {"index": 0, "id": id_, "type": "function", "function": function}

    events = stream(
        [
            chunk({"tool_calls": [call("call_a", '{"x":')]}),
            chunk({"tool_calls": [call("call_a", "1}")]}),  # the id again: same call
            chunk({"tool_calls": [call("call_b", "{}", "g")]}),  # index 0 again, new id
            chunk({}, "tool_calls"),
        ]
    )
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [(s["id"], s["name"]) for s in starts] == [("call_a", "f"), ("call_b", "g")]
    parts = [
        (e["index"], e["delta"]["partial_json"])
        for e in events
        if e["type"] == "content_block_delta"
    ]
    assert parts == [(0, '{"x":'), (0, "1}"), (1, "{}")]


def test_a_stream_cut_at_the_hold_ends_with_max_tokens() -> None:
    events = stream([chunk({"content": "w0 w1"})], cut=True)
    assert [e["type"] for e in events[-3:]] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"


def test_reasoning_streams_as_a_thinking_block_before_the_text() -> None:
    events = stream(
        [chunk({"reasoning_content": "hmm"}), chunk({"content": "4"}), chunk({}, "stop")],
        thinking=True,
    )
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text"]


def test_an_empty_stream_still_starts_and_stops_the_message() -> None:
    assert [e["type"] for e in stream([])] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]


def test_the_sse_processor_hands_chunks_to_the_egress_and_drops_usage_chunks() -> None:
    egress = anthropic.AnthropicEgress(model="claude-x", thinking=False, stop_sequences=[])
    translator = egress.stream(prompt_tokens=3)
    processor = SSEProcessor(OpenAIAdaptor(), include_usage=False, egress=translator)
    upstream = b"".join(
        b"data: " + orjson.dumps(c) + b"\n\n"
        for c in [
            chunk({"content": "Hi"}),
            chunk({}, "stop"),
            {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
        ]
    )
    frames = processor.feed(upstream + b"data: [DONE]\n\n")
    assert processor.acc.usage is not None and processor.acc.usage.completion_tokens == 1
    events = parse_events(frames + translator.end(processor.acc.usage, cut=False))
    assert [e["type"] for e in events][-2:] == ["message_delta", "message_stop"]
    assert b"[DONE]" not in frames


def test_a_whole_message_replays_as_stream_events() -> None:
    reply = completion(
        {
            "role": "assistant",
            "content": "Hi",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
            ],
        },
        "tool_calls",
    )
    egress = anthropic.AnthropicEgress(model="claude-x", thinking=False, stop_sequences=[])
    events = parse_events(egress.replay(egress.reply(reply, USAGE)))
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == [
        {"type": "text_delta", "text": "Hi"},
        {"type": "input_json_delta", "partial_json": '{"a":1}'},
    ]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ],
)
def test_errors_take_anthropics_shape(status: int, kind: str) -> None:
    response = anthropic.error_response(RelayError(status, "nope"), "req-1")
    assert response.status_code == status
    assert orjson.loads(bytes(response.body)) == {
        "type": "error",
        "error": {"type": kind, "message": "nope (request id: req-1)"},
    }


def test_an_error_after_the_stream_started_is_an_error_event() -> None:
    egress = anthropic.AnthropicEgress(model="m", thinking=False, stop_sequences=[])
    frame = egress.error_event(502, "upstream down", "req-2")
    assert frame.startswith(b"event: error\ndata: ") and frame.endswith(b"\n\n")
    assert orjson.loads(frame.split(b"data: ", 1)[1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream down (request id: req-2)"},
    }


def test_a_long_metadata_user_id_is_sent_as_its_hash() -> None:
    long_id = "user_" + "a" * 64 + "_account_x_session_y"
    user = anthropic.to_chat(body(metadata={"user_id": long_id}))["user"]
    assert len(user) == 64 and user != long_id[:64]
    assert anthropic.to_chat(body(metadata={"user_id": long_id}))["user"] == user
