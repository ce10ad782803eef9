"""End to end: Gemini (type 24) channels. The official `openai` SDK through the relay to a fake
speaking the Gemini API: text, streams, parallel function calls, images, thinking suffixes,
schema cleaning, safety settings, API version, embeddings, usage (thoughts, cached tokens) and
Google error bodies as OpenAI errors."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from services.shared.pricing_rules import image_size_ratio
from tests.fakes.gemini_upstream import CALLS, IMAGE_B64, REPLY, THOUGHT, FakeGemini
from tests.fakes.loopback import Recorded
from tests.support.relay_kit import (
    IMAGE_PRICE,
    QUOTA_PER_UNIT,
    PNG_1x1,
    apply,
    charged_once,
    customer_on,
    set_model_price,
)
from tests.support.relay_kit import options as options
from tests.support.relay_kit import world as world
from tests.support.world import (
    COMPLETION_RATIO,
    MODEL_RATIO,
    Customer,
    World,
    expected_charge,
    sdk,
    wallet,
)

pytestmark = pytest.mark.e2e
HI: Any = [{"role": "user", "content": "hi"}]
GEMINI = 24
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"city": {"type": "string", "format": "uri", "default": "Paris"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


def named(behaviour: str, suffix: str = "") -> str:
    return f"{behaviour}{uuid.uuid4().hex[:8]}{suffix}"


async def customer_of(
    world: World, fake: FakeGemini, model: str, *, key: str = "", **fields: Any
) -> Customer:
    key = key or "AIza" + uuid.uuid4().hex
    return await customer_on(world, model, base_url=fake.url, type_=GEMINI, key=key, **fields)


def sent_to(fake: FakeGemini, model: str) -> Recorded:
    [request] = [r for r in fake.requests if f"/models/{model}:" in r.path]
    return request


async def test_chat_is_a_generate_content_call_answered_as_a_completion_and_charged_once(
    world: World, gemini_fake: FakeGemini
) -> None:
    customer = await customer_of(world, gemini_fake, named("plain"))
    before = await wallet(customer)

    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        max_tokens=100,
        temperature=0.2,
        stop="END",
    )

    assert reply.choices[0].message.content == REPLY
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (10, 5)
    request = sent_to(gemini_fake, customer.model)
    assert request.path == f"/v1beta/models/{customer.model}:generateContent"
    assert request.headers["x-goog-api-key"].startswith("AIza")
    assert "key=" not in request.query  # never in the URL, where logs would keep it
    body = request.body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 100,
        "stopSequences": ["END"],
    }
    assert {s["threshold"] for s in body["safetySettings"]} == {"BLOCK_NONE"}
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)


async def test_channel_other_sets_the_api_version(world: World, gemini_fake: FakeGemini) -> None:
    customer = await customer_of(world, gemini_fake, named("plain"), other="v1")
    await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)
    assert sent_to(gemini_fake, customer.model).path.startswith("/v1/models/")


async def test_version_and_safety_options_apply_per_model(
    world: World, gemini_fake: FakeGemini, options: dict[str, str]
) -> None:
    model = named("plain")
    await apply(
        world,
        options,
        {
            "gemini.version_settings": json.dumps({"default": "v1beta", model: "v1alpha"}),
            "gemini.safety_settings": json.dumps(
                {"default": "OFF", "HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH"}
            ),
        },
    )
    customer = await customer_of(world, gemini_fake, model)
    await sdk(world, customer.key).chat.completions.create(model=model, messages=HI)
    request = sent_to(gemini_fake, model)
    assert request.path.startswith("/v1alpha/models/")
    thresholds = {s["category"]: s["threshold"] for s in request.body["safetySettings"]}
    assert thresholds.pop("HARM_CATEGORY_HARASSMENT") == "BLOCK_ONLY_HIGH"
    assert set(thresholds.values()) == {"OFF"}


async def test_stream_becomes_openai_chunks_with_one_final_usage_chunk(
    world: World, gemini_fake: FakeGemini
) -> None:
    customer = await customer_of(world, gemini_fake, named("plain"))
    before = await wallet(customer)

    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1 and chunks[-1].usage is not None and chunks[-1].choices == []
    assert (usages[0].prompt_tokens, usages[0].completion_tokens) == (10, 5)
    request = sent_to(gemini_fake, customer.model)
    assert request.path.endswith(":streamGenerateContent") and request.query == "alt=sse"
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 5)
    assert log["is_stream"] is True


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
async def test_parallel_function_calls_with_a_cleaned_schema(
    world: World, gemini_fake: FakeGemini, streamed: bool
) -> None:
    customer = await customer_of(world, gemini_fake, named("tools"))
    client = sdk(world, customer.key)
    ask: Any = [{"role": "user", "content": "Weather and time?"}]
    if streamed:
        stream = await client.chat.completions.create(
            model=customer.model, messages=ask, tools=TOOLS, tool_choice="auto", stream=True
        )
        calls: dict[int, dict[str, str]] = {}
        finish = None
        async for chunk in stream:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = call.id or slot["id"]
                    if call.function:
                        slot["name"] = call.function.name or slot["name"]
                        slot["arguments"] += call.function.arguments or ""
        got = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]
    else:
        reply = await client.chat.completions.create(
            model=customer.model, messages=ask, tools=TOOLS, tool_choice="auto"
        )
        finish = reply.choices[0].finish_reason
        got = [
            (c.id, c.function.name, json.loads(c.function.arguments))
            for c in reply.choices[0].message.tool_calls or []
            if c.type == "function"
        ]
    assert finish == "tool_calls"
    assert [(name, args) for _, name, args in got] == [(c["name"], c["args"]) for c in CALLS]
    assert len({call_id for call_id, _, _ in got}) == 2 and all(got[0][0] for _ in got)
    sent = sent_to(gemini_fake, customer.model).body
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
                {"name": "get_time"},
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    history: Any = [
        *ask,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for call_id, name, args in got
            ],
        },
        {"role": "tool", "tool_call_id": got[0][0], "content": "sunny"},
        {"role": "tool", "tool_call_id": got[1][0], "content": '{"time": "10:00"}'},
    ]
    gemini_fake.requests.clear()
    reply = await client.chat.completions.create(
        model=customer.model, messages=history, tools=TOOLS
    )
    contents = gemini_fake.last.body["contents"]
    assert contents[1] == {"role": "model", "parts": [{"functionCall": c} for c in CALLS]}
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
            {"functionResponse": {"name": "get_time", "response": {"time": "10:00"}}},
        ],
    }


async def test_images_are_sent_inline(world: World, gemini_fake: FakeGemini) -> None:
    customer = await customer_of(world, gemini_fake, named("image"))
    png = base64.b64encode(PNG_1x1).decode()
    await sdk(world, customer.key).chat.completions.create(
        model=customer.model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            }
        ],
    )
    [content] = sent_to(gemini_fake, customer.model).body["contents"]
    assert content["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
    ]


@pytest.mark.parametrize(
    ("suffix", "config"),
    [
        ("-thinking-2048", {"thinkingBudget": 2048, "includeThoughts": True}),
        ("-thinking", {"thinkingBudget": 600, "includeThoughts": True}),
        ("-nothinking", {"thinkingBudget": 0}),
    ],
)
async def test_thinking_suffixes_set_the_thinking_config_and_thoughts_are_billed(
    world: World,
    gemini_fake: FakeGemini,
    options: dict[str, str],
    suffix: str,
    config: dict[str, Any],
) -> None:
    model = named("thinking", suffix)
    await apply(
        world,
        options,
        {
            "gemini.thinking_adapter_enabled": "true",
            "gemini.models_supported_thinking_budget": json.dumps([model.removesuffix(suffix)]),
        },
    )
    customer = await customer_of(world, gemini_fake, model)
    before = await wallet(customer)
    reply = await sdk(world, customer.key).chat.completions.create(
        model=model, messages=HI, max_tokens=1000
    )
    message: Any = reply.choices[0].message
    assert message.content == REPLY and message.reasoning_content == THOUGHT
    assert reply.usage is not None and reply.usage.completion_tokens == 5 + 3
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 3
    sent = sent_to(gemini_fake, model.removesuffix(suffix)).body
    assert sent["generationConfig"]["thinkingConfig"] == config
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(10, 8)


@pytest.mark.parametrize(("behaviour", "finish"), [("max", "length"), ("safety", "content_filter")])
async def test_finish_reasons(
    world: World, gemini_fake: FakeGemini, behaviour: str, finish: str
) -> None:
    customer = await customer_of(world, gemini_fake, named(behaviour))
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI
    )
    assert reply.choices[0].finish_reason == finish


async def test_cached_content_tokens_are_billed_at_the_cache_ratio(world: World) -> None:
    fake = FakeGemini(prompt_tokens=1000, answer_tokens=10, cached_tokens=800)
    fake.start()
    try:
        model = named("plain")
        customer = await customer_of(world, fake, model)
        before = await wallet(customer)
        reply = await sdk(world, customer.key).chat.completions.create(model=model, messages=HI)
        assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
        assert reply.usage.prompt_tokens_details.cached_tokens == 800
        log = await charged_once(customer, before)
        assert json.loads(log["other"])["cache_tokens"] == 800
        # The model has no CacheRatio of its own: cached tokens cost what others do (ratio 1).
        assert log["quota"] == round((1000 + 10 * COMPLETION_RATIO) * MODEL_RATIO)
    finally:
        fake.stop()


async def test_embeddings_go_to_batch_embed_contents(world: World, gemini_fake: FakeGemini) -> None:
    customer = await customer_of(world, gemini_fake, named("embed"))
    before = await wallet(customer)
    reply = await sdk(world, customer.key).embeddings.create(
        model=customer.model, input=["one", "three"], dimensions=3
    )
    assert [item.embedding for item in reply.data] == [[3.0] * 3, [5.0] * 3]
    request = sent_to(gemini_fake, customer.model)
    assert request.path.endswith(":batchEmbedContents")
    assert request.body["requests"][0] == {
        "model": f"models/{customer.model}",
        "content": {"parts": [{"text": "one"}]},
        "outputDimensionality": 3,
    }
    log = await charged_once(customer, before)
    assert log["prompt_tokens"] > 0  # Gemini reports no usage: the local count is billed


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, openai.BadRequestError, "INVALID_ARGUMENT"),
        (403, openai.PermissionDeniedError, "PERMISSION_DENIED"),
        (429, openai.RateLimitError, "RESOURCE_EXHAUSTED"),
        (503, openai.InternalServerError, "UNAVAILABLE"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
async def test_google_error_bodies_reach_the_client_as_openai_errors(
    world: World,
    gemini_fake: FakeGemini,
    status: int,
    error: type[openai.APIStatusError],
    code: str,
    streamed: bool,
) -> None:
    customer = await customer_of(world, gemini_fake, f"fail-{status}-{uuid.uuid4().hex[:6]}")
    before = await wallet(customer)
    with pytest.raises(error) as caught:
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=HI, stream=streamed
        )
    assert caught.value.status_code == status
    body: Any = caught.value.body
    if status != 429:
        assert f"fake failure {status}" in body["message"] and body["code"] == code
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_an_invalid_key_is_google_s_400_with_its_message(
    world: World, gemini_fake: FakeGemini
) -> None:
    customer = await customer_of(world, gemini_fake, named("plain"), key="bad")
    with pytest.raises(openai.BadRequestError, match="API key not valid"):
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)


async def test_an_endpoint_gemini_does_not_serve_is_a_400(
    world: World, gemini_fake: FakeGemini
) -> None:
    customer = await customer_of(world, gemini_fake, named("plain"))
    with pytest.raises(openai.BadRequestError, match="not served by this channel type"):
        await sdk(world, customer.key).completions.create(model=customer.model, prompt="hi")


async def test_imagen_images_are_generated_through_predict_and_charged_per_image(
    world: World, gemini_fake: FakeGemini
) -> None:
    customer = await customer_of(world, gemini_fake, named("imagen-3.0-"))
    await set_model_price(world.root, customer.model, IMAGE_PRICE)
    before = await wallet(customer)

    answer = await sdk(world, customer.key).images.generate(
        model=customer.model, prompt="a lighthouse at dusk", n=2, size="1024x1792"
    )

    assert answer.data is not None
    assert [item.b64_json for item in answer.data] == [IMAGE_B64, IMAGE_B64]
    request = sent_to(gemini_fake, customer.model)
    assert request.path.endswith(f"/models/{customer.model}:predict")
    assert request.body == {
        "instances": [{"prompt": "a lighthouse at dusk"}],
        "parameters": {"sampleCount": 2, "aspectRatio": "9:16", "personGeneration": "allow_adult"},
    }
    log = await charged_once(customer, before)
    per_image = IMAGE_PRICE * QUOTA_PER_UNIT * image_size_ratio("1024x1792")
    assert log["quota"] == round(per_image * 2)

    with pytest.raises(openai.BadRequestError):  # Imagen makes at most 4
        await sdk(world, customer.key).images.generate(model=customer.model, prompt="x", n=5)
