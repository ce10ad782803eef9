"""Request parsing, token counts, the OpenAI adaptor and the error shape."""

from __future__ import annotations

import orjson
import pytest

from services.relay.adaptors.base import Outgoing, Target
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT, EMBEDDINGS, RESPONSES, SPEECH
from services.relay.errors import RelayError, error_body
from services.relay.ids import new_request_id
from services.relay.incoming import parse_json_request, requested_max_tokens
from services.relay.metering.tokenizer import count_messages, count_text, estimate_completion_tokens
from services.relay.routing.table import ChannelInfo


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
        (b'{"model": "m", "messages": "hi"}', "messages must be an array"),
        (b'{"model": 5, "messages": [{}]}', "model must be a string"),
        (b'{"model": "m", "messages": [{}], "n": 0}', "n must be an integer between 1 and 128"),
        (b'{"model": "m", "messages": [{}], "max_tokens": "9"}', "max_tokens must be an integer"),
        (b'{"model": "m", "messages": [{}], "max_tokens": -1}', "max_tokens is invalid"),
    ],
)
def test_bad_chat_bodies(raw: bytes, message: str) -> None:
    with pytest.raises(RelayError) as info:
        parse_json_request(CHAT, raw)
    assert info.value.status == 400 and info.value.message == message


def test_default_model_and_stream_flags() -> None:
    speech = parse_json_request(SPEECH, b'{"input": "hello"}')
    assert speech.model == "tts-1" and not speech.stream
    chat = parse_json_request(
        CHAT,
        b'{"model": "m", "messages": [{}], "stream": true,'
        b' "stream_options": {"include_usage": true}}',
    )
    assert chat.stream and chat.include_usage
    engine = parse_json_request(EMBEDDINGS, b'{"input": "x"}', path_model="text-embedding-3-small")
    assert engine.model == "text-embedding-3-small"
    with pytest.raises(RelayError):
        parse_json_request(EMBEDDINGS, b'{"model": "e"}')


def test_max_tokens_takes_the_larger_field() -> None:
    assert requested_max_tokens({"max_tokens": 10, "max_completion_tokens": 50}) == 50
    assert requested_max_tokens({}) == 0
    with pytest.raises(RelayError):
        requested_max_tokens({"max_tokens": 1 << 30})


def test_responses_limit_their_output_with_max_output_tokens() -> None:
    reply = parse_json_request(RESPONSES, b'{"model": "m", "input": "x", "max_output_tokens": 16}')
    assert reply.max_tokens == 16
    for bad in (b"-1", b'"16"', b"true", b"1073741824"):
        with pytest.raises(RelayError) as caught:
            parse_json_request(
                RESPONSES, b'{"model": "m", "input": "x", "max_output_tokens": %s}' % bad
            )
        assert caught.value.param == "max_output_tokens"


def test_token_counts_match_tiktoken_offline() -> None:
    # Reference values from tiktoken itself: cl100k "hello world" = 2, o200k the same text = 2.
    assert count_text("hello world", "gpt-4") == 2
    assert count_text("hello world", "gpt-4o") == 2
    assert count_text("Hello, world! This is a test.", "gpt-3.5-turbo") == 9
    messages = [
        {"role": "system", "content": "hello world"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "hello world"}, {"type": "image_url"}],
        },
    ]
    assert count_messages(messages, "gpt-4") == 3 + 2 * (3 + 2)
    assert estimate_completion_tokens(9, tool_calls=1) == 3 + 7


def _channel(base_url: str) -> ChannelInfo:
    return ChannelInfo(1, 1, "c", base_url, 1, 0, 0, ((0, "k"),))


def test_openai_request_building() -> None:
    target = Target(_channel("https://up.example/"), "sk-up", "m", CHAT, True)
    request = OpenAIAdaptor().build_request(target, Outgoing(json={"model": "m"}))
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
