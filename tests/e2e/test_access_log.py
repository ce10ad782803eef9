"""End to end: the relay and the console write one structured access-log line per request
(request id, key id, user id, model, channel, status, latency), error answers carry their
reason, upstream failures their error text and the channel's base URL, and no line holds a key
or the prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.helpers import create_channel
from tests.support.infra import Infra
from tests.support.relay_kit import world as world
from tests.support.world import Customer, World, eventually, new_customer, price_model

pytestmark = pytest.mark.e2e
PROMPT = "a secret prompt that never reaches a log"


def log_size(infra: Infra, service: str) -> int:
    return (infra.work_dir / f"{service}.log").stat().st_size


def lines_since(infra: Infra, service: str, offset: int) -> list[dict[str, Any]]:
    path: Path = infra.work_dir / f"{service}.log"
    with path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def access_lines(lines: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if line.get("logger") == "veloera.access"
        and all(line.get(key) == value for key, value in match.items())
    ]


async def chat(world: World, key: str, model: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=world.relay_url, timeout=30) as client:
        return await client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer sk-{key}"},
            json={"model": model, "messages": [{"role": "user", "content": PROMPT}]},
        )


async def test_a_relayed_request_writes_one_access_line_without_key_or_prompt(
    world: World, infra: Infra
) -> None:
    customer = await new_customer(world)
    offset = log_size(infra, "relay")
    reply = await chat(world, customer.key, customer.model)
    assert reply.status_code == 200, reply.text
    request_id = reply.headers["x-veloera-request-id"]

    async def written() -> list[dict[str, Any]] | None:
        return access_lines(lines_since(infra, "relay", offset), request_id=request_id) or None

    [line] = await eventually(written)
    assert line["level"] == "info" and line["msg"] == "request"
    assert line["method"] == "POST" and line["path"] == "/v1/chat/completions"
    assert line["status"] == 200 and line["latency_ms"] > 0
    assert line["key_id"] == customer.token["id"]
    assert line["user_id"] == customer.user_id
    assert line["model"] == customer.model
    assert line["channel"] == customer.channel_id
    assert "reason" not in line
    text = (infra.work_dir / "relay.log").read_bytes()[offset:].decode(errors="replace")
    assert customer.key not in text and PROMPT not in text


async def test_an_error_answer_is_logged_with_its_reason(world: World, infra: Infra) -> None:
    offset = log_size(infra, "relay")
    wrong_key = "sk-" + "x" * 48
    async with httpx.AsyncClient(base_url=world.relay_url, timeout=30) as client:
        reply = await client.get("/v1/models", headers={"Authorization": f"Bearer {wrong_key}"})
    assert reply.status_code == 401

    async def written() -> list[dict[str, Any]] | None:
        lines = lines_since(infra, "relay", offset)
        return access_lines(lines, path="/v1/models", status=401) or None

    [line] = await eventually(written)
    assert line["level"] == "info"
    assert line["reason"].startswith("invalid_token: ")
    text = (infra.work_dir / "relay.log").read_bytes()[offset:].decode(errors="replace")
    assert wrong_key not in text and "x" * 48 not in text


async def test_an_upstream_failure_is_logged_with_error_text_and_base_url(
    world: World, infra: Infra
) -> None:
    customer = await failing_customer(world)
    offset = log_size(infra, "relay")
    reply = await chat(world, customer.key, customer.model)
    assert reply.status_code == 400, reply.text
    request_id = reply.headers["x-veloera-request-id"]

    async def written() -> list[dict[str, Any]] | None:
        lines = lines_since(infra, "relay", offset)
        failed = [line for line in lines if line.get("msg") == "upstream attempt failed"]
        access = access_lines(lines, request_id=request_id)
        return [*failed, *access] if failed and access else None

    failure, access = await eventually(written)
    assert failure["request_id"] == request_id and failure["level"] == "warning"
    assert failure["base_url"] == world.fake.url.rstrip("/")
    assert "fake upstream error 400" in failure["error"]
    assert access["status"] == 400 and "fake upstream error 400" in access["reason"]
    assert access["channel"] != 0


async def test_the_console_logs_its_requests_with_user_and_reason(
    world: World, infra: Infra
) -> None:
    offset = log_size(infra, "web")
    async with httpx.AsyncClient(base_url=world.web_url, timeout=30) as client:
        refused = await client.get("/api/user/self")
    assert refused.status_code == 401
    await world.root.call("GET", "/api/user/self")

    async def written() -> list[dict[str, Any]] | None:
        lines = access_lines(lines_since(infra, "web", offset), path="/api/user/self")
        return lines if len(lines) == 2 else None

    first, second = await eventually(written)
    assert first["status"] == 401 and first["reason"].startswith("Unauthorized")
    assert second["status"] == 200 and second["user_id"] > 0 and "reason" not in second


async def failing_customer(world: World) -> Customer:
    """A customer whose model goes first to a channel answering 400 (never retried)."""
    customer = await new_customer(world)
    await price_model(world.root, "fail-400")
    await create_channel(
        world.root,
        base_url=world.fake.url,
        models=[customer.model],
        priority=10,
        model_mapping=json.dumps({customer.model: "fail-400"}),
    )
    return customer
