"""End to end: every relayed endpoint through the official openai SDK, charged with a log row."""

from __future__ import annotations

import httpx
import openai
import pytest

from services.relay.metering.tokenizer import count_text
from tests.fakes.openai_upstream import SPEECH_BYTES, TRANSCRIPT
from tests.support.relay_kit import (
    IMAGE_PRICE,
    QUOTA_PER_UNIT,
    PNG_1x1,
    charged_once,
    set_model_price,
    wav_bytes,
)
from tests.support.relay_kit import world as world
from tests.support.world import (
    MODEL_RATIO,
    World,
    expected_charge,
    new_customer,
    sdk,
    settled_logs,
    wallet,
)

pytestmark = pytest.mark.e2e


async def test_completions_non_stream_and_stream(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    client = sdk(world, customer.key)
    reply = await client.completions.create(model=customer.model, prompt="Say hello")
    assert reply.choices[0].text == world.fake.reply_text
    assert reply.usage is not None
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(reply.usage.prompt_tokens, 5)

    before = await wallet(customer)
    stream = await client.completions.create(model=customer.model, prompt="Say hi", stream=True)
    text = "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])
    assert text == world.fake.reply_text
    logs = await settled_logs(customer, 2)
    after = await wallet(customer)
    # The fake sends no usage for completion streams: counted locally, flagged as such.
    assert logs[0]["prompt_tokens"] == count_text("Say hi", customer.model)
    assert logs[0]["completion_tokens"] == count_text(world.fake.reply_text, customer.model)
    assert logs[0]["is_stream"] is True
    assert before["quota"] - after["quota"] == logs[0]["quota"] > 0


async def test_embeddings_via_sdk_engines_path_and_hf_alias(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    reply = await sdk(world, customer.key).embeddings.create(model=customer.model, input=["a", "b"])
    assert len(reply.data) == 2 and reply.data[0].embedding == [0.1, 0.2, 0.3]
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(world.fake.prompt_tokens, 0)  # never billed 0

    async with httpx.AsyncClient(timeout=10.0) as client:
        for path in (f"/v1/engines/{customer.model}/embeddings", "/hf/v1/embeddings"):
            answer = await client.post(
                world.relay_url + path,
                headers={"Authorization": f"Bearer sk-{customer.key}"},
                json={"input": "x", "model": customer.model},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"][0]["embedding"] == [0.1, 0.2, 0.3]
    logs = await settled_logs(customer, 3)
    assert {log["model_name"] for log in logs} == {customer.model}


async def test_moderations_counts_the_input_locally(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    text = "is this text fine?"
    reply = await sdk(world, customer.key).moderations.create(model=customer.model, input=text)
    assert reply.results[0].flagged is False
    log = await charged_once(customer, before)
    assert log["prompt_tokens"] == count_text(text, customer.model)
    assert log["quota"] == expected_charge(log["prompt_tokens"], 0)


async def test_image_generation_is_charged_per_image(world: World) -> None:
    customer = await new_customer(world)
    await set_model_price(world.root, customer.model, IMAGE_PRICE)
    before = await wallet(customer)
    reply = await sdk(world, customer.key).images.generate(
        model=customer.model, prompt="a cat", n=2, size="1024x1024"
    )
    assert reply.data is not None and len(reply.data) == 2
    log = await charged_once(customer, before)
    assert log["quota"] == round(IMAGE_PRICE * QUOTA_PER_UNIT * 2)


async def test_image_edit_and_variation_are_relayed_as_multipart(world: World) -> None:
    customer = await new_customer(world)
    await set_model_price(world.root, customer.model, IMAGE_PRICE)
    before = await wallet(customer)
    client = sdk(world, customer.key)
    edit = await client.images.edit(
        model=customer.model, image=("cat.png", PNG_1x1, "image/png"), prompt="add a hat"
    )
    assert edit.data is not None and len(edit.data) == 1
    [sent] = world.fake.requests_to("/v1/images/edits")[-1:]
    assert sent.body["prompt"] == "add a hat" and sent.body["model"] == customer.model
    assert sent.body["image"] == {"filename": "cat.png", "size": len(PNG_1x1)}
    log = await charged_once(customer, before)
    assert log["quota"] == round(IMAGE_PRICE * QUOTA_PER_UNIT)

    async with httpx.AsyncClient(timeout=10.0) as raw:  # the SDK marks variations deprecated
        variation = await raw.post(
            world.relay_url + "/v1/images/variations",
            headers={"Authorization": f"Bearer sk-{customer.key}"},
            data={"model": customer.model, "n": "1"},
            files={"image": ("cat.png", PNG_1x1, "image/png")},
        )
    assert variation.status_code == 200, variation.text
    assert len(variation.json()["data"]) == 1
    await settled_logs(customer, 2)


async def test_speech_returns_audio_bytes_and_charges_characters(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    text = "Hello there, general."
    reply = await sdk(world, customer.key).audio.speech.create(
        model=customer.model, voice="alloy", input=text
    )
    assert reply.content == SPEECH_BYTES
    assert reply.response.headers["content-type"] == "audio/mpeg"
    log = await charged_once(customer, before)
    assert log["quota"] == round(len(text) * MODEL_RATIO)


@pytest.mark.parametrize("kind", ["transcriptions", "translations"])
async def test_speech_to_text_is_charged_by_duration(world: World, kind: str) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    audio = ("talk.wav", wav_bytes(3), "audio/wav")
    if kind == "transcriptions":
        api = sdk(world, customer.key).audio.transcriptions
        text = (await api.create(model=customer.model, file=audio)).text
    else:  # the SDK marks translations deprecated: a plain multipart POST
        async with httpx.AsyncClient(timeout=10.0) as raw:
            answer = await raw.post(
                f"{world.relay_url}/v1/audio/{kind}",
                headers={"Authorization": f"Bearer sk-{customer.key}"},
                data={"model": customer.model},
                files={"file": audio},
            )
        assert answer.status_code == 200, answer.text
        text = answer.json()["text"]
    assert text == TRANSCRIPT
    sent = world.fake.requests_to(f"/v1/audio/{kind}")[-1]
    assert sent.body["model"] == customer.model
    assert sent.body["file"]["filename"] == "talk.wav"
    log = await charged_once(customer, before)
    # 3 s of audio = 3 * 1000 / 60 tokens at the model ratio.
    assert log["quota"] == round(3 * 1000 / 60 * MODEL_RATIO)


async def test_rerank(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.post(
            world.relay_url + "/v1/rerank",
            headers={"Authorization": f"Bearer sk-{customer.key}"},
            json={"model": customer.model, "query": "q", "documents": ["a", "b", "c"]},
        )
    assert answer.status_code == 200, answer.text
    assert [r["index"] for r in answer.json()["results"]] == [0, 1, 2]
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(world.fake.prompt_tokens, 0)


async def test_responses_non_stream_and_stream(world: World) -> None:
    customer = await new_customer(world)
    before = await wallet(customer)
    client = sdk(world, customer.key)
    reply = await client.responses.create(model=customer.model, input="hi")
    assert reply.output_text == world.fake.reply_text
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(world.fake.prompt_tokens, world.fake.completion_tokens)

    stream = await client.responses.create(model=customer.model, input="hi", stream=True)
    deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
    assert "".join(deltas) == world.fake.reply_text
    logs = await settled_logs(customer, 2)
    assert logs[0]["is_stream"] is True
    assert logs[0]["quota"] == log["quota"]
    assert "stream_options" not in world.fake.requests_to("/v1/responses")[-1].body


async def test_unsupported_paths_answer_501_in_openai_shape(world: World) -> None:
    customer = await new_customer(world)
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk(world, customer.key).files.list()
    assert caught.value.status_code == 501
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "not_implemented"


async def test_responses_base_url_with_slash_and_event_lines(world: World) -> None:
    # A base URL ending with `/` names the API root: no second /v1 for Responses (upstream
    # `relay/relay-text.go`).
    customer = await new_customer(world, base_url=world.fake.url + "/v1/")
    before = await wallet(customer)
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.post(
            world.relay_url + "/v1/responses",
            headers={"Authorization": f"Bearer sk-{customer.key}"},
            json={"model": customer.model, "input": "hi", "stream": True},
        )
    assert answer.status_code == 200, answer.text
    assert "event: response.output_text.delta\ndata: " in answer.text
    assert "event: response.completed\ndata: " in answer.text
    assert world.fake.requests_for(customer.model)[-1].path == "/v1/responses"
    log = await charged_once(customer, before)
    assert log["is_stream"] is True
