"""End to end: request shaping, retries, auto-disable, streaming modes and safety options.

Channels steer the shared fake upstream through model mapping: a channel that maps the
customer's model to `fail-500` is a broken channel, to `fake-drip` a slow stream, and so on.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from services.relay.metering.tokenizer import count_text
from tests.fakes.openai_upstream import REASONING, FakeOpenAI
from tests.fakes.socks5 import FakeSocks5
from tests.support.helpers import create_channel, create_token, create_user, unique_name
from tests.support.relay_kit import add_channel, apply, charged_once, mapped
from tests.support.relay_kit import options as options
from tests.support.relay_kit import world as world
from tests.support.world import (
    CONSUME_LOG,
    Customer,
    World,
    eventually,
    expected_charge,
    new_customer,
    price_model,
    sdk,
    settled_logs,
    wait_for_model,
    wallet,
)

pytestmark = pytest.mark.e2e
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


BEHAVIOURS = ("fail-500", "fail-400", "fail-401", "fake-blank", "fake-drip", "fake-reasoning",
              "fake-stall")  # fmt: skip


@pytest.fixture(autouse=True)
async def priced_behaviours(world: World) -> None:
    """Prices follow the upstream (mapped) name, so the behaviour names need a price."""
    options = {item["key"]: item["value"] for item in await world.root.call("GET", "/api/option/")}
    ratios = json.loads(options.get("ModelRatio") or "{}")
    if all(name in ratios for name in BEHAVIOURS):
        return
    for name in BEHAVIOURS:
        await price_model(world.root, name)


async def admin_log(world: World, model: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        page = await world.root.call(
            "GET", "/api/log/", params={"p": 1, "type": CONSUME_LOG, "model_name": model}
        )
        items: list[dict[str, Any]] = page["items"]
        return items[0] if items else None

    return await eventually(probe)


# ---------------------------------------------------------------- request shaping


async def test_system_prompt_param_override_and_mapping_reach_upstream(world: World) -> None:
    model = unique_name("m-")
    upstream = unique_name("up-")
    await price_model(world.root, upstream)
    await create_channel(
        world.root,
        base_url=world.fake.url,
        models=[model],
        model_mapping=json.dumps({model: upstream}),
        system_prompt="Answer in French.",
        param_override=json.dumps({"temperature": 0.25, "seed": 7}),
    )
    console, _ = await create_user(world.root, quota=1_000_000)
    world.consoles.append(console)
    token = await create_token(console)
    await wait_for_model(world.relay_url, token["key"], model)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    await sdk(world, token["key"]).chat.completions.create(
        model=model, messages=messages, temperature=1.0
    )
    [sent] = world.fake.requests_for(upstream)
    assert sent.body["messages"][0] == {
        "role": "system",
        "content": "Answer in French.\n\nBe brief.",
    }
    assert sent.body["temperature"] == 0.25 and sent.body["seed"] == 7


async def test_o_series_effort_suffix_and_token_fields(world: World) -> None:
    base = "o3-" + unique_name("t")
    await price_model(world.root, base)
    await create_channel(world.root, base_url=world.fake.url, models=[base + "-high"])
    console, _ = await create_user(world.root, quota=1_000_000)
    world.consoles.append(console)
    token = await create_token(console)
    await wait_for_model(world.relay_url, token["key"], base + "-high")
    reply = await sdk(world, token["key"]).chat.completions.create(
        model=base + "-high",
        messages=[{"role": "system", "content": "s"}, *HI],
        max_tokens=50,
        temperature=0.5,
    )
    assert reply.choices[0].message.content == world.fake.reply_text
    [sent] = world.fake.requests_for(base)
    assert sent.body["reasoning_effort"] == "high"
    assert sent.body["max_completion_tokens"] == 50 and "max_tokens" not in sent.body
    assert "temperature" not in sent.body
    assert sent.body["messages"][0]["role"] == "developer"


async def test_stream_options_dropped_for_custom_channels_with_local_usage(world: World) -> None:
    model = unique_name("m-")
    await price_model(world.root, model)
    channel_id = await create_channel(
        world.root, type=8, base_url=world.fake.url + "/v1/chat/completions", models=[model]
    )
    console, _ = await create_user(world.root, quota=1_000_000)
    world.consoles.append(console)
    token = await create_token(console)
    customer = Customer(console=console, user_id=0, token=token, model=model, channel_id=channel_id)
    await wait_for_model(world.relay_url, customer.key, model)
    before = await wallet(customer)
    stream = await sdk(world, customer.key).chat.completions.create(
        model=model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    [sent] = world.fake.requests_for(model)
    assert "stream_options" not in sent.body  # Custom channels never get it
    usage = chunks[-1].usage
    assert usage is not None  # synthetic usage chunk, counted locally
    assert usage.completion_tokens == count_text(world.fake.reply_text, model)
    log = await charged_once(customer, before)
    assert log["quota"] == expected_charge(usage.prompt_tokens, usage.completion_tokens)


async def test_pass_through_forwards_the_raw_body(world: World, options: dict[str, str]) -> None:
    customer = await new_customer(world)
    await apply(world, options, {"global.pass_through_request_enabled": "true"})
    raw = b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "x_custom": 1}'
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.post(
            world.relay_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer sk-{customer.key}"},
            content=raw % customer.model.encode(),
        )
    assert answer.status_code == 200, answer.text
    [sent] = world.fake.requests_for(customer.model)
    assert sent.body["x_custom"] == 1
    await settled_logs(customer, 1)


# ---------------------------------------------------------------- retries


async def test_auto_retry_walks_down_the_tiers_and_logs_channels_tried(
    world: World, options: dict[str, str]
) -> None:
    customer = await new_customer(world)  # priority 0, works
    first = await add_channel(
        world, customer, priority=20, model_mapping=mapped(customer, "fail-500")
    )
    second = await add_channel(
        world, customer, priority=10, model_mapping=mapped(customer, "fake-blank")
    )
    await apply(
        world,
        options,
        {"global.auto_retry_enabled": "true", "global.auto_retry_count": "3"},
    )
    before = await wallet(customer)
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI
    )
    assert reply.choices[0].message.content == world.fake.reply_text
    log = await charged_once(customer, before)
    admin = await admin_log(world, customer.model)
    tried = json.loads(admin["other"])["admin_info"]["use_channel"]
    assert tried[:2] == [first, second] and len(tried) == 3
    assert log["channel"] == tried[2]


async def test_client_error_is_not_retried_and_keeps_upstream_message(world: World) -> None:
    customer = await new_customer(world)
    await add_channel(world, customer, priority=10, model_mapping=mapped(customer, "fail-400"))
    before = await wallet(customer)
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)
    assert "fake upstream error 400" in str(caught.value)
    assert caught.value.code == "fake_400"
    await asyncio.sleep(0.5)
    after = await wallet(customer)
    assert after["quota"] == before["quota"]
    assert world.fake.requests_for(customer.model) == []  # the good channel was never tried


async def test_status_code_mapping_decides_the_retry(world: World) -> None:
    customer = await new_customer(world)
    await add_channel(
        world,
        customer,
        priority=10,
        model_mapping=mapped(customer, "fail-400"),
        status_code_mapping=json.dumps({"400": "503"}),
    )
    # A 400 alone is not retried (see above); mapped to 503 it is, and the good channel serves.
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI
    )
    assert reply.choices[0].message.content == world.fake.reply_text
    [log] = await settled_logs(customer, 1)
    assert log["quota"] == expected_charge(10, 5)


async def test_hidden_upstream_errors(world: World, options: dict[str, str]) -> None:
    customer = await new_customer(world)
    await add_channel(world, customer, priority=10, model_mapping=mapped(customer, "fail-400"))
    await apply(world, options, {"global.hide_upstream_error_enabled": "true"})
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)
    assert "Upstream error with status code 400" in str(caught.value)
    assert "fake upstream error" not in str(caught.value)


async def test_a_key_answering_401_is_disabled(world: World, options: dict[str, str]) -> None:
    await apply(world, options, {"AutomaticDisableChannelEnabled": "true"})
    customer = await new_customer(world)
    bad = await add_channel(
        world, customer, priority=10, model_mapping=mapped(customer, "fail-401")
    )
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI
    )  # 401 is retried on the good channel (legacy rule)
    assert reply.choices[0].message.content == world.fake.reply_text

    async def disabled() -> bool | None:
        channel = await world.root.call("GET", f"/api/channel/{bad}")
        statuses = {key["status"] for key in channel["keys"]} | {channel["status"]}
        return True if statuses - {1} else None

    assert await eventually(disabled)
    # The next request no longer tries the disabled key's channel.
    count = len(world.fake.requests_for("fail-401"))
    await sdk(world, customer.key).chat.completions.create(model=customer.model, messages=HI)
    assert len(world.fake.requests_for("fail-401")) == count


# ---------------------------------------------------------------- streaming


async def test_client_disconnect_closes_upstream_and_bills_what_was_delivered(
    world: World,
) -> None:
    customer = await new_customer(world)
    await add_channel(world, customer, priority=10, model_mapping=mapped(customer, "fake-drip"))
    before = await wallet(customer)
    start = world.fake.drip_sent
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True
    )
    received = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
            if received == 3:
                break
    await stream.close()
    log = await charged_once(customer, before)
    sent_then = world.fake.drip_sent - start
    assert sent_then < world.fake.drip_chunks  # the upstream stream was cut short
    await asyncio.sleep(0.5)
    assert world.fake.drip_sent - start <= sent_then + 1  # and stays closed
    assert 0 < log["completion_tokens"] < world.fake.drip_chunks * 2
    assert log["quota"] > 0


async def test_pseudo_stream_for_non_stream_only_channels(world: World) -> None:
    customer = await new_customer(world)
    await add_channel(
        world,
        customer,
        priority=10,
        setting=json.dumps({"stream_support": "NON_STREAM_ONLY"}),
    )
    before = await wallet(customer)
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == world.fake.reply_text
    assert chunks[-1].usage is not None
    sent = world.fake.requests_for(customer.model)[-1]
    assert "stream" not in sent.body or sent.body["stream"] is False
    log = await charged_once(customer, before)
    assert log["is_stream"] is True
    assert log["quota"] == expected_charge(
        chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens
    )


async def test_thinking_to_content_wraps_reasoning(world: World) -> None:
    customer = await new_customer(world)
    await add_channel(
        world,
        customer,
        priority=10,
        model_mapping=mapped(customer, "fake-reasoning"),
        setting=json.dumps({"thinking_to_content": True}),
    )
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == f"<think>\n{REASONING}\n</think>\n{world.fake.reply_text}"


async def test_keep_alive_pings_while_upstream_is_quiet(
    world: World, options: dict[str, str]
) -> None:
    quiet = FakeOpenAI(stall_seconds=2.0)
    quiet.start()
    try:
        customer = await new_customer(world, base_url=quiet.url)
        await add_channel(
            world, customer, priority=10, base_url=quiet.url,
            model_mapping=mapped(customer, "fake-stall"),
        )  # fmt: skip
        await apply(
            world,
            options,
            {
                "general_setting.ping_interval_enabled": "true",
                "general_setting.ping_interval_seconds": "1",
            },
        )
        body = b""
        async with (
            httpx.AsyncClient(timeout=10.0) as client,
            client.stream(
                "POST",
                world.relay_url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer sk-{customer.key}"},
                json={"model": customer.model, "messages": HI, "stream": True},
            ) as answer,
        ):
            async for piece in answer.aiter_bytes():
                body += piece
        assert b": PING" in body
        assert body.count(b"[DONE]") == 1
        assert quiet.reply_text.split()[0].encode() in body
    finally:
        quiet.stop()


async def test_idle_timeout_cuts_the_stream_and_bills_nothing_unsaid(world: World) -> None:
    customer = await new_customer(world)
    await add_channel(world, customer, priority=10, model_mapping=mapped(customer, "fake-stall"))
    before = await wallet(customer)
    stream = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, stream=True
    )
    chunks: list[Any] = []
    # after STREAMING_TIMEOUT (3 s in tests) the stream ends with an error event: the SDK
    # raises rather than handing over a truncated answer as a whole one
    with pytest.raises(openai.APIError, match="broke off"):
        async for chunk in stream:
            chunks.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    await asyncio.sleep(0.5)
    after = await wallet(customer)
    assert after["quota"] == before["quota"]
    # The stream that never ended is over for the relay: it keeps serving, charging once.
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI, max_tokens=5
    )
    assert reply.choices

    async def charged() -> list[dict[str, Any]] | None:
        page = await customer.console.call("GET", "/api/log/self", params={"type": CONSUME_LOG})
        rows = [row for row in page["items"] if row["quota"] > 0]
        return rows or None

    [row] = await eventually(charged)
    assert row["is_stream"] is False


# ---------------------------------------------------------------- auth and safety


async def test_x_api_key_header_is_accepted(world: World) -> None:
    customer = await new_customer(world)
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.post(
            world.relay_url + "/v1/chat/completions",
            headers={"x-api-key": f"sk-{customer.key}"},
            json={"model": customer.model, "messages": HI},
        )
    assert answer.status_code == 200, answer.text
    await settled_logs(customer, 1)


async def test_sensitive_regex_blocks_even_without_plain_words(
    world: World, options: dict[str, str]
) -> None:
    customer = await new_customer(world)
    await apply(
        world,
        options,
        {"CheckSensitiveEnabled": "true", "CheckSensitiveOnPromptEnabled": "true",
         "SensitiveWords": "regex:forb[i1]dden\\s+topic"},
    )  # fmt: skip
    before = await wallet(customer)
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(world, customer.key).chat.completions.create(
            model=customer.model,
            messages=[{"role": "user", "content": "tell me about the FORB1DDEN  topic"}],
        )
    assert caught.value.code == "sensitive_words_detected"
    assert world.fake.requests_for(customer.model) == []
    assert (await wallet(customer))["quota"] == before["quota"]


async def test_browser_extensions_are_blocked_when_enabled(
    world: World, options: dict[str, str]
) -> None:
    customer = await new_customer(world)
    await apply(world, options, {"global.block_browser_extension_enabled": "true"})
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.post(
            world.relay_url + "/v1/chat/completions",
            headers={
                "Authorization": f"Bearer sk-{customer.key}",
                "Origin": "chrome-extension://abcdef",
            },
            json={"model": customer.model, "messages": HI},
        )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "browser_extension_blocked"


async def test_model_prefix_routes_and_lists_prefixed_names(world: World) -> None:
    customer = await new_customer(world)
    prefix = unique_name("p") + "/"
    await add_channel(world, customer, priority=10, model_prefix=prefix)
    listed = await sdk(world, customer.key).models.list()
    assert prefix + customer.model in [m.id for m in listed.data]
    reply = await sdk(world, customer.key).chat.completions.create(
        model=prefix + customer.model, messages=HI
    )
    assert reply.choices[0].message.content == world.fake.reply_text
    assert world.fake.requests_for(customer.model)[-1].body["model"] == customer.model
    [log] = await settled_logs(customer, 1)
    assert log["model_name"] == prefix + customer.model


async def test_global_virtual_model_mapping(world: World, options: dict[str, str]) -> None:
    customer = await new_customer(world)
    virtual = unique_name("v-")
    mapping = {"mapping": {virtual: [{"model": customer.model, "priorities": 1}]}}
    await apply(world, options, {"global_model_mapping": json.dumps(mapping)})
    listed = await sdk(world, customer.key).models.list()
    assert virtual in [m.id for m in listed.data]
    before = await wallet(customer)
    reply = await sdk(world, customer.key).chat.completions.create(model=virtual, messages=HI)
    assert reply.choices[0].message.content == world.fake.reply_text
    [log] = await settled_logs(customer, 1)
    after = await wallet(customer)
    assert log["model_name"] == virtual
    assert before["quota"] - after["quota"] == log["quota"] == expected_charge(10, 5)


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_a_socks5_proxy_carries_the_channels_traffic(world: World, scheme: str) -> None:
    """socks5:// resolves names here, socks5h:// at the proxy; either way the upstream is only
    reached through the proxy, and the request is charged once."""
    proxy = FakeSocks5()
    await proxy.start()
    try:
        customer = await new_customer(world, base_url="http://127.0.0.1:9")  # unreachable
        fake_port = int(world.fake.url.rsplit(":", 1)[1])
        await add_channel(
            world,
            customer,
            priority=10,
            base_url=f"http://localhost:{fake_port}",
            setting=json.dumps({"proxy": f"{scheme}://127.0.0.1:{proxy.port}"}),
        )
        reply = await sdk(world, customer.key).chat.completions.create(
            model=customer.model, messages=HI
        )
        assert reply.choices[0].message.content == world.fake.reply_text
        hosts = {host for host, port in proxy.targets if port == fake_port}
        assert hosts == ({"localhost"} if scheme == "socks5h" else {"127.0.0.1"}), proxy.targets
        await settled_logs(customer, 1)
    finally:
        await proxy.stop()


async def test_channel_proxy_setting_is_used(world: World) -> None:
    customer = await new_customer(world, base_url="http://127.0.0.1:9")  # unreachable directly
    await add_channel(
        world,
        customer,
        priority=10,
        base_url="http://upstream.invalid",
        setting=json.dumps({"proxy": world.fake.url}),  # the fake doubles as a forward proxy
    )
    reply = await sdk(world, customer.key).chat.completions.create(
        model=customer.model, messages=HI
    )
    assert reply.choices[0].message.content == world.fake.reply_text
    assert world.fake.requests_for(customer.model)[-1].headers["host"] == "upstream.invalid"
    await settled_logs(customer, 1)
