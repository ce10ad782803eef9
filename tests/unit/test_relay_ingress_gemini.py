"""Gemini ingress: request, answer, stream and error conversions (pure functions), each answer
checked against the official `google-genai` SDK's own types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from services.relay.adaptors.base import UsageCounts
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.errors import RelayError
from services.relay.ingress import gemini
from services.relay.ingress.gemini_answer import GeminiEgress, error_body, response_of
from services.relay.upstream.streaming import SSEProcessor

USAGE = UsageCounts(prompt_tokens=12, completion_tokens=7)
HI = [{"role": "user", "parts": [{"text": "hi"}]}]


def chat_of(**fields: Any) -> dict[str, Any]:
    return gemini.to_chat({"contents": HI, **fields}, "gemini-x")


def answer(reply: dict[str, Any], usage: UsageCounts = USAGE) -> types.GenerateContentResponse:
    """A reply converted, then read by the SDK's own model."""
    return types.GenerateContentResponse.model_validate(
        response_of(reply, usage, model="gemini-x", thoughts=True)
    )


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {"id": "c1", "choices": [{"index": 0, "message": message, "finish_reason": finish}]}


def stream(chunks: list[dict[str, Any]], *, sse: bool, cut: bool = False) -> bytes:
    """Chunks through the relay's SSE processor with the Gemini egress, plus the tail."""
    egress = GeminiEgress(model="gemini-x", thoughts=False, sse=sse)
    translator = egress.stream(10)
    processor = SSEProcessor(OpenAIAdaptor(), include_usage=False, egress=translator)
    out = b""
    for chunk in chunks:
        out += processor.feed(b"data: " + orjson.dumps(chunk) + b"\n\n")
    return out + translator.end(USAGE, cut=cut) + egress.done_frame


def sse_objects(data: bytes) -> list[types.GenerateContentResponse]:
    frames = [f for f in data.decode().split("\r\n\r\n") if f.strip()]
    return [
        types.GenerateContentResponse.model_validate_json(f.removeprefix("data: ")) for f in frames
    ]


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": "c1", "choices": [{"index": index, "delta": fields, "finish_reason": finish}]}


# ---------------------------------------------------------------------- request


def test_snake_case_fields_are_read_like_camel_case() -> None:
    chat = gemini.to_chat(
        {
            "contents": HI,
            "system_instruction": {"parts": [{"text": "be brief"}]},
            "generation_config": {"max_output_tokens": 30, "top_p": 0.5, "stop_sequences": ["x"]},
        },
        "gemini-x",
    )
    assert chat["messages"][0] == {"role": "system", "content": "be brief"}
    assert (chat["max_tokens"], chat["top_p"], chat["stop"]) == (30, 0.5, ["x"])


def test_function_responses_find_their_calls_by_id_then_by_name() -> None:
    chat = chat_of(
        contents=[
            {"role": "user", "parts": [{"text": "go"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "a", "args": {"x": 1}}},
                    {"functionCall": {"name": "b", "args": {}, "id": "given"}},
                    {"functionCall": {"name": "a", "args": {"x": 2}}},
                ],
            },
            {
                "role": "function",
                "parts": [
                    {"functionResponse": {"name": "b", "id": "given", "response": {"ok": 1}}},
                    {"functionResponse": {"name": "a", "response": {"n": 1}}},
                    {"functionResponse": {"name": "a", "response": {"n": 2}}},
                ],
            },
        ]
    )
    calls = chat["messages"][1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1", "given", "call_2"]
    assert [m["tool_call_id"] for m in chat["messages"][2:]] == ["given", "call_1", "call_2"]


def test_tool_config_and_schema_conversion() -> None:
    declaration = {
        "name": "f",
        "parameters": {
            "type": "OBJECT",
            "properties": {"a": {"type": "ARRAY", "items": {"type": "INTEGER"}, "nullable": True}},
            "propertyOrdering": ["a"],
        },
    }
    chat = chat_of(
        tools=[{"functionDeclarations": [declaration]}, {"googleSearch": {}}],
        toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "f",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": ["array", "null"], "items": {"type": "integer"}}},
                },
            },
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert (
        chat_of(toolConfig={"functionCallingConfig": {"mode": "NONE"}}).get("tool_choice") is None
    )


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [({}, ""), ({"thinkingBudget": 0}, ""), ({"thinkingBudget": 1024}, "low"),
     ({"thinkingBudget": 10000}, "medium"), ({"thinkingBudget": -1}, "high"),
     ({"thinkingLevel": "LOW"}, "low")],
)  # fmt: skip
def test_thinking_config_is_a_reasoning_effort(thinking: dict[str, Any], effort: str) -> None:
    assert gemini.reasoning_effort({"thinkingConfig": thinking}) == effort


def test_inline_audio_and_documents_become_openai_parts() -> None:
    parts = [
        {"text": "listen"},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
        {"inline_data": {"mime_type": "application/pdf", "data": "JVBE"}},
        {"fileData": {"fileUri": "https://x.example/a.txt", "mimeType": "text/plain"}},
    ]
    [message] = chat_of(contents=[{"role": "user", "parts": parts}])["messages"]
    assert message["content"][1:] == [
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
        {
            "type": "file",
            "file": {"filename": "file", "file_data": "data:application/pdf;base64,JVBE"},
        },
        {"type": "text", "text": "https://x.example/a.txt"},
    ]


def test_stream_request_asks_for_usage_and_bounds_the_hold() -> None:
    body = {"contents": HI, "generationConfig": {"maxOutputTokens": 64, "candidateCount": 2}}
    req = gemini.parse_generate(orjson.dumps(body), "gemini-x", stream=True, sse=True)
    assert req.stream and req.payload["stream_options"] == {"include_usage": True}
    assert (req.max_tokens, req.choices) == (64, 2)


def test_bad_candidate_count_is_a_400() -> None:
    with pytest.raises(RelayError) as caught:
        chat_of(generationConfig={"candidateCount": 0})
    assert caught.value.status == 400


# ---------------------------------------------------------------------- answer


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("stop", "STOP"), ("length", "MAX_TOKENS"), ("content_filter", "SAFETY"),
     ("tool_calls", "STOP"), (None, "STOP")],
)  # fmt: skip
def test_finish_reasons(finish: str | None, reason: str) -> None:
    reply = completion({"role": "assistant", "content": "x"}, finish)  # type: ignore[arg-type]
    [candidate] = answer(reply).candidates or []
    assert candidate.finish_reason == reason


def test_every_choice_is_a_candidate_with_thoughts_and_calls() -> None:
    reply = {
        "id": "c1",
        "choices": [
            {
                "index": 0,
                "message": {"content": "a", "reasoning_content": "hmm"},
                "finish_reason": "stop",
            },
            {
                "index": 1,
                "message": {
                    "content": None,
                    "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{bad"}}],
                },
                "finish_reason": "tool_calls",
            },
        ],
    }
    parsed = answer(reply)
    first, second = parsed.candidates or []
    assert first.content is not None and first.content.parts is not None
    assert [(p.text, p.thought) for p in first.content.parts] == [("hmm", True), ("a", None)]
    assert second.index == 1 and second.content is not None and second.content.parts
    call = second.content.parts[0].function_call
    assert call is not None and (call.id, call.name, call.args) == ("t", "f", {})
    assert parsed.response_id == "c1"


def test_usage_metadata_reports_thoughts_and_cache_apart() -> None:
    usage = UsageCounts(prompt_tokens=10, completion_tokens=7, cached_tokens=4, reasoning_tokens=2)
    meta = answer(completion({"content": "x"}), usage).usage_metadata
    assert meta is not None
    assert (meta.prompt_token_count, meta.candidates_token_count) == (10, 5)
    assert (meta.thoughts_token_count, meta.cached_content_token_count) == (2, 4)
    assert meta.total_token_count == 17


def test_parallel_calls_stream_whole_even_when_all_numbered_zero() -> None:
    chunks = [
        delta(role="assistant", content=""),
        delta(tool_calls=[{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x"'}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]),
        delta(tool_calls=[{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{}"}}]),
        delta(finish="tool_calls"),
    ]
    objects = sse_objects(stream(chunks, sse=True))
    calls = [c for o in objects for c in o.function_calls or []]
    assert [(c.id, c.name, c.args) for c in calls] == [("a", "f", {"x": 1}), ("b", "g", {})]
    last = objects[-1]
    assert last.candidates and last.candidates[0].finish_reason == "STOP"
    assert last.usage_metadata is not None and last.usage_metadata.total_token_count == 19


def test_array_stream_is_one_json_array_and_a_cut_is_max_tokens() -> None:
    data = stream([delta(content="Hello"), delta(content=" there")], sse=False, cut=True)
    items = orjson.loads(data)
    assert [i["candidates"][0]["content"]["parts"][0]["text"] for i in items] == [
        "Hello",
        " there",
        "",
    ]
    assert items[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_array_stream_with_nothing_but_the_end_is_still_an_array() -> None:
    assert len(orjson.loads(stream([], sse=False))) == 1


@pytest.mark.parametrize(
    ("status", "name"),
    [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"),
     (404, "NOT_FOUND"), (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"),
     (418, "FAILED_PRECONDITION"), (599, "INTERNAL")],
)  # fmt: skip
def test_errors_carry_google_status_names(status: int, name: str) -> None:
    error = orjson.loads(error_body(status, "nope", "req1"))["error"]
    assert error == {"code": status, "message": "nope (request id: req1)", "status": name}


# ---------------------------------------------------------------------- never a 500

KEYS = ["contents", "role", "parts", "text", "functionCall", "functionResponse", "name", "args",
        "id", "inlineData", "fileData", "mimeType", "data", "fileUri", "tools",
        "functionDeclarations", "parameters", "type", "properties", "toolConfig",
        "functionCallingConfig", "mode", "generationConfig", "maxOutputTokens", "candidateCount",
        "stopSequences", "responseSchema", "thinkingConfig", "thinkingBudget",
        "systemInstruction", "requests", "content", "model", "choices", "message", "delta",
        "tool_calls", "function", "arguments", "index", "finish_reason"]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_body_is_a_request_or_a_400(body: Any) -> None:
    raw = orjson.dumps(body)
    parsers: list[Callable[[], object]] = [
        lambda: gemini.parse_generate(raw, "m", stream=True, sse=False),
        lambda: gemini.parse_count(raw, "m"),
        lambda: gemini.parse_embed(raw, "m", batch=True),
        lambda: gemini.parse_embed(raw, "m", batch=False),
    ]
    for parse in parsers:
        try:
            parse()
        except RelayError as err:
            assert err.status == 400


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_upstream_reply_converts(reply: Any) -> None:
    if isinstance(reply, dict):
        response_of(reply, USAGE, model="m", thoughts=True)
        stream([reply], sse=True)
