"""Chat request parsing, token estimates, the OpenAI adaptor and the error shape."""

from __future__ import annotations

import orjson
import pytest

from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.errors import RelayError, error_body
from services.relay.ids import new_request_id
from services.relay.routes.chat import parse_chat_body, requested_max_tokens
from services.relay.routing import ChannelInfo
from services.relay.tokens import estimate_completion_tokens, estimate_prompt_tokens


def test_error_shape_carries_the_request_id() -> None:
    body = orjson.loads(
        error_body("no quota", type_="veloera_error", code="c", param=None, request_id="rid1")
    )
    assert body == {
        "error": {
            "message": "no quota (request id: rid1)",
            "type": "veloera_error",
            "param": None,
            "code": "c",
        }
    }


def test_request_ids_are_time_plus_random() -> None:
    first, second = new_request_id(), new_request_id()
    assert len(first) == 22 and first[:14].isdigit() and first != second


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[1]", "request body must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model is required"),
        (b'{"model": "m"}', "messages is required"),
        (b'{"model": "m", "messages": []}', "messages is required"),
    ],
)
def test_bad_chat_bodies(raw: bytes, message: str) -> None:
    with pytest.raises(RelayError) as info:
        parse_chat_body(raw)
    assert info.value.status == 400 and info.value.message == message


def test_max_tokens_takes_the_larger_field() -> None:
    assert requested_max_tokens({"max_tokens": 10, "max_completion_tokens": 50}) == 50
    assert requested_max_tokens({}) == 0
    with pytest.raises(RelayError):
        requested_max_tokens({"max_tokens": 1 << 30})


def test_prompt_estimate_counts_text_parts() -> None:
    messages = [
        {"role": "system", "content": "a" * 40},
        {"role": "user", "content": [{"type": "text", "text": "b" * 8}, {"type": "image_url"}]},
    ]
    assert estimate_prompt_tokens(messages) == 48 // 4 + 2 * 3
    assert estimate_completion_tokens(9, tool_calls=1) == 3 + 7


def _channel(base_url: str) -> ChannelInfo:
    return ChannelInfo(1, 1, "c", base_url, 1, 0, 0, ((0, "k"),))


def test_openai_request_building() -> None:
    request = OpenAIAdaptor().build_request(
        _channel("https://up.example/"), "sk-up", {"model": "m"}, stream=True
    )
    assert request.url == "https://up.example/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-up"
    assert request.headers["Accept"] == "text/event-stream"
    assert orjson.loads(request.body) == {"model": "m"}


def test_openai_usage_and_empty_reply() -> None:
    adaptor = OpenAIAdaptor()
    reply = {
        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    }
    usage = adaptor.parse_usage(reply)
    assert usage is not None and (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
    ) == (3, 4, 2)
    assert not adaptor.reply_is_empty(reply)
    assert adaptor.reply_is_empty({"choices": [{"message": {"content": "  "}}]})
    tool_only = {"choices": [{"message": {"content": None, "tool_calls": [{"id": "t"}]}}]}
    assert not adaptor.reply_is_empty(tool_only)
    assert not adaptor.reply_is_empty({"data": [{"embedding": [0.1]}]})
