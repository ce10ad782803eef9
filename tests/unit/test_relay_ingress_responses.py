"""The Responses -> chat conversion and the chat -> Responses answer (ingress/responses*.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.relay.adaptors.base import UsageCounts
from services.relay.errors import RelayError
from services.relay.ingress.responses import to_chat
from services.relay.ingress.responses_answer import ResponsesEgress


def chat_of(**body: Any) -> dict[str, Any]:
    return to_chat({"model": "m", **body})


def test_items_become_chat_messages_in_order() -> None:
    chat = chat_of(
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Use metric units."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "low",
                    },
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": {"two": 2}},
        ],
        max_output_tokens=50,
        text={"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    )

    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Use metric units."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"a":1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": '{"two":2}'},
    ]
    assert chat["max_tokens"] == 50
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": [{"role": "robot", "content": "hi"}]}, None),
        ({"input": [{"role": "user", "content": [{"type": "input_video"}]}]}, "input"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools"),
        ({"input": "hi", "tools": [{"type": "file_search"}]}, "tools"),
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format"),
        ({"input": "hi", "instructions": 3}, "instructions"),
    ],
)
def test_bad_or_unsupported_input_is_a_400_naming_the_field(
    body: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(RelayError) as refused:
        chat_of(**body)
    assert refused.value.status == 400
    assert refused.value.param == param


def chunk(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def events_of(frames: bytes) -> list[dict[str, Any]]:
    return [
        orjson.loads(line.removeprefix(b"data: "))
        for line in frames.split(b"\n")
        if line.startswith(b"data: ")
    ]


def test_a_chat_stream_becomes_numbered_events_with_stable_item_ids() -> None:
    egress = ResponsesEgress({"model": "m", "tools": []})
    stream = egress.stream(10)
    frames = stream.chunk(chunk(reasoning_content="hmm"))
    frames += stream.chunk(chunk(content="Hel"))
    frames += stream.chunk(chunk(content="lo"))
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a"'}}
    frames += stream.chunk(chunk(tool_calls=[call]))
    frames += stream.chunk(chunk(tool_calls=[{"index": 0, "function": {"arguments": ":1}"}}]))
    frames += stream.end(UsageCounts(prompt_tokens=10, completion_tokens=4), cut=False)

    events = events_of(frames)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert {e["response"]["id"] for e in events if "response" in e} == {egress.response_id}
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed"
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "function_call"]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == final["output"]
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    assert added == [item["id"] for item in final["output"]]
    assert final["output"][1]["content"][0]["text"] == "Hello"
    assert final["output"][2]["arguments"] == '{"a":1}'
    assert final["usage"]["total_tokens"] == 14


def test_a_stream_cut_at_the_hold_ends_incomplete() -> None:
    stream = ResponsesEgress({"model": "m"}).stream(10)
    frames = stream.chunk(chunk(content="partial"))
    frames += stream.end(UsageCounts(prompt_tokens=10, completion_tokens=100), cut=True)

    last = events_of(frames)[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_replay_streams_the_reply_with_its_own_ids() -> None:
    egress = ResponsesEgress({"model": "m"})
    reply = {
        "choices": [
            {
                "message": {
                    "content": "Hi",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    body = egress.reply(reply, UsageCounts(prompt_tokens=1, completion_tokens=1))

    events = events_of(egress.replay(body))
    final = orjson.loads(body)
    assert events[-1]["response"] == final
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == final["output"]
