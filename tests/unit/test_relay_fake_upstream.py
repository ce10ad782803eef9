"""The fake OpenAI upstream speaks the real wire format (checked with the official SDK)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply_text="one two three", prompt_tokens=7, completion_tokens=3) as upstream:
        yield upstream


def sdk(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-upstream", base_url=fake.url + "/v1", max_retries=0)


def test_non_stream_reply_and_recorded_request(fake: FakeOpenAI) -> None:
    with sdk(fake) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content == "one two three"
    assert reply.usage is not None and reply.usage.prompt_tokens == 7
    assert fake.last_request.headers["authorization"] == "Bearer sk-upstream"
    assert fake.last_request.body["model"] == "gpt-4o-mini"


def test_stream_with_usage(fake: FakeOpenAI) -> None:
    with sdk(fake) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_failure_models_answer_openai_errors(fake: FakeOpenAI) -> None:
    with sdk(fake) as client, pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(
            model="fail-500", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 500
    assert "fake upstream error 500" in str(info.value)
