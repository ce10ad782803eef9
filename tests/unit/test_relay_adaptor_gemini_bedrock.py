"""The Gemini and Bedrock adaptors' pure parts: schema cleaning, thinking suffixes, the stream
converters fed bytes split anywhere, error bodies, Bedrock model ids and key form."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.relay.adaptors.bedrock import InvokeStream, credentials_of, model_id
from services.relay.adaptors.gemini import GenerateStream, clean_schema, parse_error, thinking_of
from services.relay.adaptors.native import ProviderError
from services.relay.adaptors.vertex import AccessTokens, claude_id, region_of
from services.relay.errors import RelayError
from services.relay.options import ProviderOptions
from tests.fakes.bedrock_upstream import chunk_frame, frame


def chunks_of(frames: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in frames.split(b"\n") if line.startswith(b"data: ")]


def test_schema_cleaning_is_recursive_and_keeps_what_gemini_reads() -> None:
    schema = {
        "$schema": "x",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "site": {"type": "string", "format": "uri"},
            "items": {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
            "default": {"type": "string"},  # a property named like a keyword stays
        },
    }
    assert clean_schema(schema) == {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "site": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object"}},
            "default": {"type": "string"},
        },
    }


ADAPTER = ProviderOptions(gemini_thinking=True, gemini_thinking_models=frozenset({"g"}))


@pytest.mark.parametrize(
    ("model", "max_tokens", "providers", "name", "config"),
    [
        ("g-thinking-512", 0, ADAPTER, "g", {"thinkingBudget": 512, "includeThoughts": True}),
        ("g-thinking", 1000, ADAPTER, "g", {"thinkingBudget": 600, "includeThoughts": True}),
        ("g-thinking", 0, ADAPTER, "g", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("g-nothinking", 0, ADAPTER, "g", {"thinkingBudget": 0}),
        ("h-thinking-512", 0, ADAPTER, "h", {"includeThoughts": True}),  # no budget: not listed
        ("h-nothinking", 0, ADAPTER, "h", None),
        ("g", 0, ADAPTER, "g", None),
        ("g-thinking", 0, ProviderOptions(), "g-thinking", None),  # the adapter is off
    ],
)
def test_thinking_suffixes(
    model: str, max_tokens: int, providers: ProviderOptions, name: str, config: Any
) -> None:
    generation: dict[str, Any] = {"maxOutputTokens": max_tokens} if max_tokens else {}
    assert thinking_of(model, generation, providers) == name
    assert generation.get("thinkingConfig") == config


def test_gemini_stream_split_anywhere_and_errors() -> None:
    usage = {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 1}
    parts = [[{"text": "Hi", "thought": True}], [{"text": "Hel"}], [{"text": "lo"}]]
    body = b"".join(
        b"data: "
        + orjson.dumps(
            {
                "candidates": [
                    {"content": {"parts": p}, **({"finishReason": "STOP"} if i == 2 else {})}
                ],
                "usageMetadata": usage,
            }
        )
        + b"\r\n\r\n"
        for i, p in enumerate(parts)
    )
    for size in (1, 9, len(body)):
        stream = GenerateStream("g")
        frames = b"".join(stream.feed(body[i : i + size]) for i in range(0, len(body), size))
        chunks = chunks_of(frames + stream.finish())
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        assert "".join(d.get("content", "") for d in deltas) == "Hello"
        assert "".join(d.get("reasoning_content", "") for d in deltas) == "Hi"
        assert chunks[-1]["usage"]["completion_tokens"] == 3
        assert [c for c in chunks if c.get("usage")] == chunks[-1:]
    error = b'data: {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}\n'
    with pytest.raises(ProviderError) as caught:
        GenerateStream("g").feed(error)
    assert caught.value.status == 429


def test_google_error_bodies_object_and_array() -> None:
    body = {"error": {"code": 404, "message": "no such model", "status": "NOT_FOUND"}}
    for raw in (orjson.dumps(body), orjson.dumps([body])):
        message, error = parse_error(404, raw)
        assert message == "no such model"
        assert error == {"type": "not_found_error", "code": "NOT_FOUND"}
    assert parse_error(502, b"<html>") == ("bad response status code 502", None)


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us-west-2", "us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
        ("eu-central-1", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"),
        ("ap-northeast-1", "apac.anthropic.claude-3-7-sonnet-20250219-v1:0"),
        ("sa-east-1", "anthropic.claude-3-7-sonnet-20250219-v1:0"),
    ],
)
def test_bedrock_model_ids(region: str, expected: str) -> None:
    assert model_id("claude-3-7-sonnet-20250219", region) == expected
    assert model_id("arn:aws:bedrock:x", region) == "arn:aws:bedrock:x"
    assert model_id("claude-opus-4-20250514", "eu-west-1") == (
        "anthropic.claude-opus-4-20250514-v1:0"
    )


def test_bedrock_key_form() -> None:
    credentials, region = credentials_of(" AK | SK | us-east-1 ")
    assert (credentials.access_key, credentials.secret_key, region) == ("AK", "SK", "us-east-1")
    for bad in ("AK|SK", "AK||us-east-1", "a|b|c|d"):
        with pytest.raises(RelayError):
            credentials_of(bad)


def test_bedrock_event_stream_split_anywhere_and_exception_frames() -> None:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 3}}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    body = b"".join(chunk_frame(event) for event in events)
    for size in (1, 13, len(body)):
        stream = InvokeStream("m")
        frames = b"".join(stream.feed(body[i : i + size]) for i in range(0, len(body), size))
        chunks = chunks_of(frames)
        assert chunks[1]["choices"][0]["delta"] == {"content": "Hello"}
        assert chunks[-1]["usage"]["prompt_tokens"] == 3
    exception = frame(
        {":message-type": "exception", ":exception-type": "throttlingException"},
        b'{"message": "slow down"}',
    )
    with pytest.raises(ProviderError) as caught:
        InvokeStream("m").feed(exception)
    assert (caught.value.status, caught.value.message) == (429, "slow down")


def test_vertex_claude_ids_and_regions() -> None:
    assert claude_id("claude-3-7-sonnet-20250219") == "claude-3-7-sonnet@20250219"
    assert claude_id("claude-3-5-sonnet-20241022") == "claude-3-5-sonnet-v2@20241022"
    assert claude_id("claude-opus-4@20250514") == "claude-opus-4@20250514"
    regions = '{"default": "us-central1", "claude-x": "global"}'
    assert region_of(regions, "claude-x") == "global"
    assert region_of(regions, "gemini-y") == "us-central1"
    assert region_of("europe-west4", "m") == "europe-west4"
    assert region_of("", "m") == "us-central1"


async def test_vertex_token_uri_must_be_google_s_unless_private_addresses_are_allowed() -> None:
    account = '{"project_id": "p", "token_uri": "http://10.0.0.1/token", "client_email": "x"}'
    with pytest.raises(RelayError, match="token_uri must be"):
        await AccessTokens(any_token_uri=False).token(account)
    with pytest.raises(RelayError, match="not a service-account JSON"):
        await AccessTokens(any_token_uri=False).token("not json")
