"""Every channel-type adaptor against the fake upstream: URL, headers, body and the answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from services.relay.adaptors import Adaptors
from services.relay.adaptors.base import Outgoing, Target
from services.relay.adaptors.compat import COMPAT_TYPES
from services.relay.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, Endpoint
from services.relay.routing.table import ChannelInfo
from services.relay.upstream.http import open_upstream, read_timeout
from tests.fakes.openai_upstream import FakeOpenAI, RecordedRequest

Http = aiohttp.ClientSession
ADAPTORS = Adaptors(azure_api_version="2099-01-01")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


def channel(type_: int, base_url: str, **extra: Any) -> ChannelInfo:
    return ChannelInfo(7, type_, "c", base_url, 1, 0, 0, ((1, "sk-up"),), **extra)


async def call(
    http: aiohttp.ClientSession,
    fake: FakeOpenAI,
    info: ChannelInfo,
    *,
    model: str = "gpt-4o-mini",
    endpoint: Endpoint = CHAT,
    key: str = "sk-up",
    body: dict[str, Any] | None = None,
) -> tuple[RecordedRequest, dict[str, Any]]:
    """Send through the adaptor; return what the fake received and the converted answer."""
    adaptor = ADAPTORS.for_type(info.type)
    target = Target(info, key, model, endpoint, False)
    payload = body or {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    request = adaptor.build_request(target, Outgoing(json=dict(payload)))
    fake.clear()
    response = await open_upstream(http, request, read_timeout(10.0))
    data = await response.read()
    response.release()
    answer = orjson.loads(adaptor.convert_response(target, data))
    return fake.last_request, answer


async def test_openai_sends_bearer_and_organization(
    session: aiohttp.ClientSession, fake: FakeOpenAI
) -> None:
    sent, answer = await call(session, fake, channel(1, fake.url, organization="org-1"))
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-up"
    assert sent.headers["openai-organization"] == "org-1"
    assert answer["choices"][0]["message"]["content"] == fake.reply_text
    usage = ADAPTORS.for_type(1).parse_usage(answer)
    assert usage is not None and usage.prompt_tokens == fake.prompt_tokens


async def test_azure_deployment_url_and_api_key(
    session: aiohttp.ClientSession, fake: FakeOpenAI
) -> None:
    sent, _ = await call(session, fake, channel(3, fake.url), model="gpt-4o")
    assert sent.path == "/openai/deployments/gpt-4o/chat/completions"
    assert sent.query == "api-version=2099-01-01"
    assert sent.headers["api-key"] == "sk-up" and "authorization" not in sent.headers
    info = channel(3, fake.url, other="2024-10-21")
    sent, _ = await call(session, fake, info, endpoint=EMBEDDINGS,
                         body={"model": "e", "input": "x"})  # fmt: skip
    assert sent.path == "/openai/deployments/gpt-4o-mini/embeddings"
    assert sent.query == "api-version=2024-10-21"


async def test_custom_uses_the_full_url_with_model(
    session: aiohttp.ClientSession, fake: FakeOpenAI
) -> None:
    info = channel(8, fake.url + "/custom/{model}/chat")
    sent, answer = await call(session, fake, info, model="llama-3")
    assert sent.path == "/custom/llama-3/chat"
    assert answer["object"] == "chat.completion"


async def test_openrouter_headers(session: Http, fake: FakeOpenAI) -> None:
    sent, _ = await call(session, fake, channel(20, fake.url))
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["x-title"] == "Veloera" and sent.headers["http-referer"]


async def test_deepseek_fim_and_cache_hits(session: Http, fake: FakeOpenAI) -> None:
    sent, _ = await call(
        session, fake, channel(43, fake.url), endpoint=COMPLETIONS,
        body={"model": "deepseek-chat", "prompt": "def f(", "suffix": ")"},
    )  # fmt: skip
    assert sent.path == "/beta/completions" and sent.body["suffix"] == ")"
    usage = ADAPTORS.for_type(43).parse_usage(
        {"usage": {"prompt_tokens": 9, "completion_tokens": 1, "prompt_cache_hit_tokens": 4}}
    )
    assert usage is not None and usage.cached_tokens == 4


async def test_xai_reasoning_suffix(session: Http, fake: FakeOpenAI) -> None:
    body = {"model": "grok-3-mini-high", "messages": [{"role": "user", "content": "hi"}]}
    sent, _ = await call(session, fake, channel(48, fake.url), model="grok-3-mini-high", body=body)
    assert sent.body["model"] == "grok-3-mini" and sent.body["reasoning_effort"] == "high"


async def test_ollama_native_chat_and_embeddings(
    session: aiohttp.ClientSession, fake: FakeOpenAI
) -> None:
    sent, _ = await call(session, fake, channel(4, fake.url))
    assert sent.path == "/api/chat"
    sent, answer = await call(
        session, fake, channel(4, fake.url), endpoint=EMBEDDINGS, model="nomic",
        body={"model": "nomic", "input": ["a"], "encoding_format": "float"},
    )  # fmt: skip
    assert sent.path == "/api/embed" and sent.body == {"model": "nomic", "input": ["a"]}
    # The fake answers native paths like chat; the converter leaves non-native answers alone.
    assert "choices" in answer


def test_ollama_native_embedding_answer_is_converted() -> None:
    adaptor = ADAPTORS.for_type(4)
    target = Target(channel(4, ""), "k", "nomic", EMBEDDINGS, False)
    native = orjson.dumps({"model": "nomic", "embeddings": [[0.5]], "prompt_eval_count": 3})
    answer = orjson.loads(adaptor.convert_response(target, native))
    assert answer["data"] == [{"object": "embedding", "index": 0, "embedding": [0.5]}]
    assert answer["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize(
    ("type_", "model", "path"),
    [
        (45, "doubao-pro", "/api/v3/chat/completions"),
        (45, "bot-123", "/api/v3/bots/chat/completions"),
        (46, "ernie-4.0", "/v2/chat/completions"),
        (35, "abab6.5", "/v1/text/chatcompletion_v2"),
        (16, "glm-4", "/api/paas/v4/chat/completions"),
        (17, "qwen-max", "/compatible-mode/v1/chat/completions"),
        (27, "sonar", "/chat/completions"),
        (49, "openai/gpt-4o", "/chat/completions"),
        (25, "moonshot-v1-8k", "/v1/chat/completions"),
        (40, "Qwen/Qwen2-7B", "/v1/chat/completions"),
        (42, "mistral-large", "/v1/chat/completions"),
        (19, "360gpt", "/v1/chat/completions"),
        (31, "yi-large", "/v1/chat/completions"),
        (22, "fastgpt", "/v1/chat/completions"),
        (47, "qwen2", "/v1/chat/completions"),
    ],
)
async def test_compatible_types_paths(
    session: aiohttp.ClientSession, fake: FakeOpenAI, type_: int, model: str, path: str
) -> None:
    sent, answer = await call(session, fake, channel(type_, fake.url), model=model)
    assert sent.path == path
    assert sent.headers["authorization"] == "Bearer sk-up"
    assert sent.body["messages"] == [{"role": "user", "content": "hi"}]
    assert answer["choices"][0]["message"]["content"] == fake.reply_text


async def test_baidu_v2_appid_key(session: Http, fake: FakeOpenAI) -> None:
    sent, _ = await call(session, fake, channel(46, fake.url), key="app-9|sk-real")
    assert sent.headers["appid"] == "app-9" and sent.headers["authorization"] == "Bearer sk-real"


async def test_cloudflare_account_url(session: Http, fake: FakeOpenAI) -> None:
    sent, _ = await call(session, fake, channel(39, fake.url, other="acc42"), model="@cf/llama")
    assert sent.path == "/client/v4/accounts/acc42/ai/v1/chat/completions"


def test_default_base_urls() -> None:
    assert COMPAT_TYPES[25].base_url == "https://api.moonshot.cn"
    target = Target(channel(20, ""), "k", "m", CHAT, False)
    request = ADAPTORS.for_type(20).build_request(target, Outgoing(json={"model": "m"}))
    assert request.url == "https://openrouter.ai/api/v1/chat/completions"
    target = Target(channel(1, ""), "k", "m", RESPONSES, True)
    request = ADAPTORS.for_type(1).build_request(target, Outgoing(json={"model": "m"}))
    assert request.url == "https://api.openai.com/v1/responses"
    assert request.headers["Accept"] == "text/event-stream"
