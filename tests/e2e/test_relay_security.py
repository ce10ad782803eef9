"""End to end: what the relay never lets out (channel keys, internal addresses), and the clear
4xx answers that replace 5xx for client-side or configuration problems (issue 11)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.support.helpers import create_channel, create_token, create_user, unique_name
from tests.support.relay_kit import apply, set_option
from tests.support.relay_kit import options as options
from tests.support.relay_kit import world as world
from tests.support.world import World, new_customer, price_model, wait_for_model

pytestmark = pytest.mark.e2e
CHANNEL_KEY = "sk-channel-secret-0123456789"


async def only_behind(world: World, behaviour: str, *, price: bool = True) -> tuple[str, str]:
    """(API key, model) of a new user whose model only one channel serves, answering with
    `behaviour` (the fake upstream's mapped model name)."""
    model = unique_name("m-")
    if price:
        await price_model(world.root, model)
        await price_model(world.root, behaviour)
    await create_channel(
        world.root,
        base_url=world.fake.url,
        models=[model],
        key=CHANNEL_KEY,
        model_mapping=json.dumps({model: behaviour}),
    )
    console, _user_id = await create_user(world.root, quota=1_000_000)
    world.consoles.append(console)
    token = await create_token(console)
    await wait_for_model(world.relay_url, token["key"], model)
    return token["key"], model


async def chat(world: World, key: str, model: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    async with httpx.AsyncClient(timeout=10.0) as client:
        return await client.post(
            world.relay_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer sk-{key}"},
            json=body,
        )


async def test_an_upstream_error_quoting_the_key_and_an_address_is_scrubbed(
    world: World,
) -> None:
    key, model = await only_behind(world, "fake-leak-401")
    for stream in (False, True):
        answer = await chat(world, key, model, stream=stream)
        assert answer.status_code == 401
        message = answer.json()["error"]["message"]
        assert CHANNEL_KEY not in answer.text and "10.20.30.40" not in answer.text
        assert "Incorrect API key provided: [key redacted]" in message
    assert world.fake.requests_for("fake-leak-401")  # the upstream did quote it


async def test_an_upstream_redirect_answers_502(world: World) -> None:
    key, model = await only_behind(world, "fake-redirect")
    answer = await chat(world, key, model)
    assert answer.status_code == 502
    assert "redirect" in answer.json()["error"]["message"]


async def test_an_unpriced_model_is_a_4xx_naming_the_model_and_the_fix(world: World) -> None:
    upstream_model = "fake-unpriced-" + unique_name()
    key, model = await only_behind(world, upstream_model, price=False)
    answer = await chat(world, key, model)
    assert answer.status_code == 403, answer.text  # was 500, which SDKs retry
    error = answer.json()["error"]
    assert error["code"] == "model_price_error"
    assert upstream_model in error["message"]  # the name prices are looked up by
    assert "ModelPrice" in error["message"]


async def test_sensitive_words_are_found_in_every_field_without_stalling(
    world: World, options: dict[str, str]
) -> None:
    customer = await new_customer(world)
    await apply(
        world,
        options,
        {"CheckSensitiveEnabled": "true", "CheckSensitiveOnPromptEnabled": "true",
         "SensitiveWords": "regex:^(a+)+$\nforbidden"},
    )  # fmt: skip
    tool = {"type": "function", "function": {"name": "f", "description": "ｆｏｒｂｉｄｄｅｎ"}}
    hidden: list[dict[str, Any]] = [
        {"tools": [tool]},
        {"messages": [{"role": "user", "name": "for\u200bbidden", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "a" * 28}]},  # the backtracking case
    ]
    for extra in hidden:
        answer = await chat(world, customer.key, customer.model, **extra)
        assert answer.status_code == 400, extra
        assert answer.json()["error"]["code"] == "sensitive_words_detected"
    assert world.fake.requests_for(customer.model) == []
    answer = await chat(world, customer.key, customer.model)
    assert answer.status_code == 200


async def test_a_sensitive_pattern_re2_cannot_run_is_refused(
    world: World, options: dict[str, str]
) -> None:
    options["SensitiveWords"] = ""
    answer = await world.root.envelope(
        "PUT", "/api/option/", json={"key": "SensitiveWords", "value": "regex:(a)\\1"}
    )
    assert answer["success"] is False and "not supported" in answer["message"]
    await set_option(world.root, "SensitiveWords", "")


@pytest.mark.parametrize(
    ("header", "status"),
    [("Bearer sk-abc-²", 401), ("Bearer sk-abc-" + "9" * 40, 401)],
)
async def test_malformed_keys_are_401(world: World, header: str, status: int) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.post(
            world.relay_url + "/v1/chat/completions",
            headers={b"Authorization": header.encode("latin-1")},  # the byte 0xB2: `²`
            json={"model": "m", "messages": []},
        )
    assert answer.status_code == status and answer.json()["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("url", ["http://[::1", "http://example.com:99999/x.png"])
async def test_malformed_image_urls_do_not_break_the_request(world: World, url: str) -> None:
    customer = await new_customer(world)
    image = {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
    answer = await chat(
        world, customer.key, customer.model, messages=[{"role": "user", "content": [image]}]
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("DELETE", "/v1/chat/completions", 405), ("PUT", "/v1/models/x", 405),
     ("POST", "/v1/no-such-api", 404), ("GET", "/v1/files", 501)],
)  # fmt: skip
async def test_unknown_v1_urls_are_4xx_except_upstream_s_unimplemented_apis(
    world: World, method: str, path: str, status: int
) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.request(method, world.relay_url + path)
    assert answer.status_code == status
    assert "request id" in answer.json()["error"]["message"]


@pytest.mark.parametrize("key", ["", "sk-not-a-real-key"], ids=["no key", "wrong key"])
async def test_a_large_body_without_a_valid_key_is_refused_before_it_is_read(
    world: World, key: str
) -> None:
    """A client announcing 20 MB without a valid key is answered 401 after its headers; the
    relay does not wait for (or hold) the body."""
    host, port = world.relay_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        writer.write(
            (
                "POST /v1/chat/completions HTTP/1.1\r\n"
                f"Host: {host}\r\nContent-Type: application/json\r\n{auth}"
                f"Content-Length: {20 * 1024 * 1024}\r\n\r\n"
                '{"model": "gpt-4o-mini", "messages": ['
            ).encode()
        )
        await writer.drain()
        # The rest of the body never comes: only an answer that does not wait for it arrives.
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)
    finally:
        writer.close()
    assert status_line.split()[1] == b"401", status_line
