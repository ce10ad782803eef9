"""End to end: the official `google-genai` SDK through the relay to an OpenAI-compatible
channel: text, streams, system instruction, function calls, images, countTokens, embeddings,
the model list, errors and billing."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.genai_kit import client
from tests.support.genai_kit import clients as clients
from tests.support.helpers import create_channel
from tests.support.relay_kit import PNG_1x1, charged_once, steer
from tests.support.relay_kit import world as world
from tests.support.world import (
    Customer,
    World,
    expected_charge,
    new_customer,
    price_model,
    settled_logs,
    wait_for_model,
    wallet,
)

pytestmark = pytest.mark.e2e
CAP = 16
NO_AUTO_CALLS = types.AutomaticFunctionCallingConfig(disable=True)
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="The weather in a city",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={
                    "city": types.Schema(type=types.Type.STRING),
                    "unit": types.Schema(type=types.Type.STRING, nullable=True),
                },
                required=["city"],
            ),
        )
    ]
)


@pytest.fixture
def thinker() -> Iterator[FakeOpenAI]:
    """An upstream that reports cached prompt tokens and reasoning tokens."""
    with FakeOpenAI(
        prompt_tokens=10, completion_tokens=7, cached_tokens=4, reasoning_tokens=2
    ) as fake:
        yield fake


@pytest.fixture
def wordy() -> Iterator[FakeOpenAI]:
    """An upstream whose every answer is 2,000 words."""
    with FakeOpenAI(reply_text=" ".join(f"w{i}" for i in range(2000))) as fake:
        yield fake


@pytest.fixture
def broken() -> Iterator[FakeOpenAI]:
    """An upstream that answers every call with a 500."""
    with FakeOpenAI(force_status=500) as fake:
        yield fake


async def raw_post(
    world: World, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as http:
        return await http.post(world.relay_url + path, headers=headers or {}, json=body)


def goog(customer: Customer) -> dict[str, str]:
    return {"x-goog-api-key": f"sk-{customer.key}"}


HI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize("version", [None, "v1beta"], ids=["v1", "v1beta"])
async def test_generate_content_is_answered_in_gemini_format_and_charged_once(
    world: World, clients: list[genai.Client], version: str | None
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)

    reply = await client(world, clients, customer.key, version).aio.models.generate_content(
        model=customer.model,
        contents="hi",
        config=types.GenerateContentConfig(
            system_instruction="Be brief.",
            temperature=0.5,
            top_p=0.9,
            top_k=3,
            max_output_tokens=200,
            stop_sequences=["END"],
            seed=7,
        ),
    )

    assert reply.text == world.fake.reply_text
    assert reply.model_version == customer.model
    [candidate] = reply.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content is not None and candidate.content.role == "model"
    usage = reply.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (10, 5)
    assert usage.total_token_count == 15
    [sent] = world.fake.requests_for(customer.model)
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert sent.body["max_tokens"] == 200 and sent.body["stop"] == ["END"]
    assert (sent.body["temperature"], sent.body["top_p"], sent.body["seed"]) == (0.5, 0.9, 7)
    assert "top_k" not in sent.body and sent.body.get("stream") is not True
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)
    assert (log["prompt_tokens"], log["completion_tokens"]) == (10, 5)
    assert log["is_stream"] is False


async def test_stream_over_sse_is_gemini_chunks_and_charged_once(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)

    chunks = [
        chunk
        async for chunk in await client(
            world, clients, customer.key
        ).aio.models.generate_content_stream(model=customer.model, contents="hi")
    ]

    assert len(chunks) > 2
    assert "".join(chunk.text or "" for chunk in chunks) == world.fake.reply_text
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == 5
    sent = world.fake.requests_for(customer.model)[-1]
    assert sent.body["stream"] is True
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)
    assert log["is_stream"] is True


async def test_a_json_array_stream_the_upstream_breaks_off_ends_with_an_error_element(
    world: World,
) -> None:
    customer = await new_customer(world)
    await steer(world, customer, "fake-stall-late")  # some text, then silence
    path = f"/v1beta/models/{customer.model}:streamGenerateContent"
    answer = await raw_post(world, path, HI, goog(customer))
    assert answer.status_code == 200, answer.text
    items = answer.json()  # still one well-formed array after STREAMING_TIMEOUT
    assert isinstance(items, list)
    assert items[0]["candidates"][0]["content"]["parts"][0]["text"] == "Hel"
    errors = [item["error"] for item in items if "error" in item]
    assert len(errors) == 1 and "broke off" in errors[0]["message"]


async def test_stream_without_alt_sse_is_one_json_array(world: World) -> None:
    """(With the key as a Bearer token, which Gemini's routes take too.)"""
    customer = await new_customer(world)
    before = await wallet(customer)
    path = f"/v1beta/models/{customer.model}:streamGenerateContent"

    bearer = {"Authorization": f"Bearer sk-{customer.key}"}
    answer = await raw_post(world, path, HI, bearer)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    items = answer.json()
    assert isinstance(items, list) and len(items) > 2
    text = "".join(
        part.get("text", "") for item in items for part in item["candidates"][0]["content"]["parts"]
    )
    assert text == world.fake.reply_text
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"
    assert items[-1]["usageMetadata"]["totalTokenCount"] == 15
    await charged_once(customer, before)


async def test_stream_past_max_output_tokens_is_cut_with_max_tokens(
    world: World, clients: list[genai.Client], wordy: FakeOpenAI
) -> None:
    customer = await new_customer(world, base_url=wordy.url)
    before = await wallet(customer)

    chunks = [
        chunk
        async for chunk in await client(
            world, clients, customer.key
        ).aio.models.generate_content_stream(
            model=customer.model,
            contents="hi",
            config=types.GenerateContentConfig(max_output_tokens=CAP),
        )
    ]

    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == CAP
    assert 0 < len("".join(chunk.text or "" for chunk in chunks).split()) < 2000
    assert world.fake.requests_for(customer.model) == []  # served by the wordy channel
    log = await charged_once(customer, before)
    assert log["completion_tokens"] == CAP


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
async def test_parallel_function_calls_round_trip(
    world: World, clients: list[genai.Client], streamed: bool
) -> None:
    customer = await new_customer(world)
    await steer(world, customer, "fake-parallel-tools")
    sdk = client(world, clients, customer.key)
    config = types.GenerateContentConfig(
        tools=[WEATHER],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY
            )
        ),
        automatic_function_calling=NO_AUTO_CALLS,
    )
    ask = types.Content(role="user", parts=[types.Part(text="Weather in Paris and Rome?")])

    if streamed:
        chunks = [
            chunk
            async for chunk in await sdk.aio.models.generate_content_stream(
                model=customer.model, contents=[ask], config=config
            )
        ]
        calls = [call for chunk in chunks for call in chunk.function_calls or []]
        model_turn = types.Content(
            role="model", parts=[types.Part(function_call=call) for call in calls]
        )
        assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == "STOP"
    else:
        reply = await sdk.aio.models.generate_content(
            model=customer.model, contents=[ask], config=config
        )
        calls = reply.function_calls or []
        assert reply.candidates and reply.candidates[0].content is not None
        model_turn = reply.candidates[0].content
        assert reply.candidates[0].finish_reason == types.FinishReason.STOP

    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome", "unit": "C"}),
    ]
    sent = world.fake.last_request.body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "unit": {"type": ["string", "null"]},
                    },
                    "required": ["city"],
                },
                "description": "The weather in a city",
            },
        }
    ]
    assert sent["tool_choice"] == "required"

    answers = types.Content(
        role="user",
        parts=[
            types.Part.from_function_response(name="get_weather", response={"sky": "sunny"}),
            types.Part.from_function_response(name="get_weather", response={"sky": "rain"}),
        ],
    )
    await sdk.aio.models.generate_content(
        model=customer.model, contents=[ask, model_turn, answers], config=config
    )
    messages = world.fake.last_request.body["messages"]
    assert messages[1]["role"] == "assistant"
    assert [call["id"] for call in messages[1]["tool_calls"]] == ["call_paris", "call_rome"]
    assert [json.loads(c["function"]["arguments"]) for c in messages[1]["tool_calls"]] == [
        {"city": "Paris"},
        {"city": "Rome", "unit": "C"},
    ]
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "call_paris", "content": '{"sky":"sunny"}'},
        {"role": "tool", "tool_call_id": "call_rome", "content": '{"sky":"rain"}'},
    ]
    await settled_logs(customer, 2)


async def test_model_names_with_slashes_and_colons_reach_their_channel(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world)
    model = f"org/{customer.model}:8b"
    await price_model(world.root, model)
    await create_channel(world.root, base_url=world.fake.url, models=[model])
    await wait_for_model(world.relay_url, customer.key, model)

    reply = await client(world, clients, customer.key).aio.models.generate_content(
        model=model, contents="hi"
    )

    assert reply.text == world.fake.reply_text
    assert world.fake.requests_for(model)[-1].path == "/v1/chat/completions"


async def test_inline_image_reaches_the_channel_as_a_data_url(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world)
    parts: list[types.Part] = [
        types.Part(text="What is in this picture?"),
        types.Part.from_bytes(data=PNG_1x1, mime_type="image/png"),
        types.Part.from_uri(file_uri="https://images.example/cat.png", mime_type="image/png"),
    ]
    reply = await client(world, clients, customer.key).aio.models.generate_content(
        model=customer.model, contents=types.Content(role="user", parts=parts)
    )
    assert reply.text == world.fake.reply_text
    [sent] = world.fake.requests_for(customer.model)
    data = base64.b64encode(PNG_1x1).decode()
    assert sent.body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        {"type": "image_url", "image_url": {"url": "https://images.example/cat.png"}},
    ]


async def test_json_schema_and_candidates_reach_the_channel(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world)
    await client(world, clients, customer.key).aio.models.generate_content(
        model=customer.model,
        contents="A city, as JSON",
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=types.Schema(
                type=types.Type.OBJECT, properties={"name": types.Schema(type=types.Type.STRING)}
            ),
            candidate_count=2,
            max_output_tokens=50,
        ),
    )
    [sent] = world.fake.requests_for(customer.model)
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "response",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    }
    assert sent.body["n"] == 2 and sent.body["max_tokens"] == 50


async def test_thoughts_and_cached_tokens_are_in_usage_metadata(
    world: World, clients: list[genai.Client], thinker: FakeOpenAI
) -> None:
    customer = await new_customer(world, base_url=thinker.url)
    before = await wallet(customer)
    reply = await client(world, clients, customer.key).aio.models.generate_content(
        model=customer.model, contents="hi"
    )
    usage = reply.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 10 and usage.cached_content_token_count == 4
    assert usage.candidates_token_count == 5 and usage.thoughts_token_count == 2
    assert usage.total_token_count == 17
    log = await charged_once(customer, before)
    assert (log["prompt_tokens"], log["completion_tokens"]) == (10, 7)


async def test_count_tokens_counts_locally_without_upstream_or_charge(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    sdk = client(world, clients, customer.key)

    short = await sdk.aio.models.count_tokens(model=customer.model, contents="hi")
    longer = await sdk.aio.models.count_tokens(
        model=customer.model, contents="Tell me about the history of Paris, please, in French."
    )

    assert short.total_tokens is not None and longer.total_tokens is not None
    assert 0 < short.total_tokens < longer.total_tokens
    assert world.fake.requests_for(customer.model) == []
    after = await wallet(customer)
    assert (after["quota"], after["request_count"]) == (before["quota"], before["request_count"])


async def test_embeddings_go_over_the_openai_embeddings_path(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)

    texts: list[types.Content] = [
        types.Content(parts=[types.Part(text="first text")]),
        types.Content(parts=[types.Part(text="second text")]),
    ]
    reply = await client(world, clients, customer.key).aio.models.embed_content(
        model=customer.model,
        contents=texts,
        config=types.EmbedContentConfig(output_dimensionality=3),
    )

    assert [e.values for e in reply.embeddings or []] == [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]
    [sent] = world.fake.requests_for(customer.model)
    assert sent.path == "/v1/embeddings"
    assert sent.body["input"] == ["first text", "second text"]
    assert sent.body["dimensions"] == 3
    await charged_once(customer, before)

    single = await raw_post(
        world,
        f"/v1beta/models/{customer.model}:embedContent",
        {"content": {"parts": [{"text": "one"}]}},
        goog(customer),
    )
    assert single.status_code == 200, single.text
    assert single.json() == {"embedding": {"values": [0.1, 0.2, 0.3]}}
    assert world.fake.requests_for(customer.model)[-1].body["input"] == "one"


async def test_model_list_is_gemini_shaped_and_openai_clients_keep_theirs(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world)
    sdk = client(world, clients, customer.key)

    names = [model.name async for model in await sdk.aio.models.list()]
    one = await sdk.aio.models.get(model=customer.model)

    assert f"models/{customer.model}" in names
    assert one.name == f"models/{customer.model}"
    assert one.input_token_limit == 32768 and one.output_token_limit == 8192
    async with httpx.AsyncClient(timeout=10.0) as http:
        by_query = await http.get(
            f"{world.relay_url}/v1beta/models", params={"key": customer.key, "pageSize": 1}
        )
        openai_list = await http.get(
            f"{world.relay_url}/v1/models", headers={"Authorization": f"Bearer sk-{customer.key}"}
        )
    assert by_query.status_code == 200
    assert len(by_query.json()["models"]) == 1
    assert "nextPageToken" in by_query.json() or names == [by_query.json()["models"][0]["name"]]
    assert openai_list.json()["object"] == "list"
    assert customer.model in [m["id"] for m in openai_list.json()["data"]]
    with pytest.raises(errors.ClientError) as caught:
        await sdk.aio.models.get(model="no-such-model-anywhere")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


async def test_non_stream_only_channel_answers_the_stream_as_gemini_chunks(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world)
    await create_channel(
        world.root,
        base_url=world.fake.url,
        models=[customer.model],
        priority=10,
        setting=json.dumps({"stream_support": "NON_STREAM_ONLY"}),
    )
    await asyncio.sleep(0.3)
    before = await wallet(customer)

    chunks = [
        chunk
        async for chunk in await client(
            world, clients, customer.key
        ).aio.models.generate_content_stream(model=customer.model, contents="hi")
    ]

    assert "".join(chunk.text or "" for chunk in chunks) == world.fake.reply_text
    assert world.fake.requests_for(customer.model)[-1].body.get("stream") is not True
    log = await charged_once(customer, before)
    assert log["is_stream"] is True and log["quota"] == expected_charge(10, 5)


# ---------------------------------------------------------------------- errors


async def test_bad_key_is_unauthenticated(world: World, clients: list[genai.Client]) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await client(world, clients, "not-a-real-key").aio.models.generate_content(
            model="any", contents="hi"
        )
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")
    assert "request id" in (caught.value.message or "")
    async with httpx.AsyncClient(timeout=10.0) as http:
        keyless = await http.post(f"{world.relay_url}/v1beta/models/any:generateContent", json=HI)
    assert keyless.status_code == 401
    assert keyless.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_no_quota_is_refused_and_nothing_is_charged(
    world: World, clients: list[genai.Client]
) -> None:
    customer = await new_customer(world, quota=100)
    before = await wallet(customer)
    with pytest.raises(errors.ClientError) as caught:
        await client(world, clients, customer.key).aio.models.generate_content(
            model=customer.model,
            contents="hi",
            config=types.GenerateContentConfig(max_output_tokens=4000),
        )
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")
    assert world.fake.requests_for(customer.model) == []
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_unknown_model_is_not_found(world: World, clients: list[genai.Client]) -> None:
    customer = await new_customer(world)
    with pytest.raises(errors.ClientError) as caught:
        await client(world, clients, customer.key).aio.models.generate_content(
            model="no-such-model-anywhere", contents="hi"
        )
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


MALFORMED = [
    b"{not json",
    b"[]",
    b'{"contents": []}',
    b'{"contents": [{"role": "robot", "parts": [{"text": "hi"}]}]}',
    b'{"contents": [{"parts": "hi"}]}',
    b'{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": -1}}',
    b'{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"temperature": "hot"}}',
    b'{"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]}',
    b'{"contents": [{"parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": 3}]}',
    b'{"contents": [{"parts": [{"inlineData": {"data": 1}}]}]}',
    b'{"contents": [{"parts": [{"text": "hi"}]}], "toolConfig": {"functionCallingConfig": 1}}',
]


async def test_malformed_body_is_invalid_argument(world: World) -> None:
    customer = await new_customer(world)
    async with httpx.AsyncClient(timeout=10.0) as http:
        for body in MALFORMED:
            answer = await http.post(
                f"{world.relay_url}/v1beta/models/{customer.model}:generateContent",
                headers=goog(customer),
                content=body,
            )
            assert answer.status_code == 400, (body, answer.text)
            assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
            assert answer.json()["error"]["code"] == 400
        embed = await http.post(
            f"{world.relay_url}/v1beta/models/{customer.model}:batchEmbedContents",
            headers=goog(customer),
            json={"requests": "text"},
        )
    assert embed.status_code == 400, embed.text
    assert world.fake.requests_for(customer.model) == []


async def test_unknown_action_and_url_are_gemini_404s(world: World) -> None:
    customer = await new_customer(world)
    for method, path in [
        ("POST", f"/v1beta/models/{customer.model}:predictLongRunning"),
        ("POST", f"/v1beta/models/{customer.model}"),
        ("GET", "/v1beta/tunedModels"),
        ("DELETE", "/v1beta/models"),
    ]:
        async with httpx.AsyncClient(timeout=10.0) as http:
            answer = await http.request(method, world.relay_url + path, headers=goog(customer))
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["status"] == "NOT_FOUND"


async def test_upstream_failure_is_a_server_error_and_releases_the_hold(
    world: World, clients: list[genai.Client], broken: FakeOpenAI
) -> None:
    customer = await new_customer(world, base_url=broken.url)
    before = await wallet(customer)
    with pytest.raises(errors.ServerError) as caught:
        await client(world, clients, customer.key).aio.models.generate_content(
            model=customer.model, contents="hi"
        )
    assert (caught.value.code, caught.value.status) == (500, "INTERNAL")
    assert (await wallet(customer))["quota"] == before["quota"]
