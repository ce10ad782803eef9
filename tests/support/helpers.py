"""A small client of the console API (`/api/*`) for tests: setup, users, channels, keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from services.cli.infra import generate_plane_secrets
from services.shared import internal_auth
from services.shared.config import Secret
from services.shared.grpcutil import open_channel

ROOT_USERNAME = "root"
ROOT_PASSWORD = "rootpass123"

# The credentials of the system the test session starts (tests/conftest.py), with the operator
# identity tests call accounts and billing as directly (every RPC, every NATS subject).
PLANE = generate_plane_secrets(admin=True)
ADMIN = internal_auth.Credential(
    internal_auth.ADMIN, Secret(PLANE[internal_auth.token_variable(internal_auth.ADMIN)])
)
RELAY = internal_auth.Credential(
    internal_auth.RELAY, Secret(PLANE[internal_auth.token_variable(internal_auth.RELAY)])
)


def admin_channel(address: str) -> grpc.aio.Channel:
    """A channel to accounts or billing that calls as the operator tool."""
    return open_channel(address, ADMIN)


def unique_name(prefix: str = "u") -> str:
    """A username that fits the 12-character limit and never repeats."""
    return f"{prefix}{uuid.uuid4().hex[: 11 - len(prefix)]}"


@dataclass
class Console:
    """An authenticated console session: cookie plus the Veloera-User header."""

    client: httpx.AsyncClient
    user_id: int

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call an endpoint and return `data`, failing the test on `success: false`."""
        body = await self.envelope(method, path, **kwargs)
        assert body["success"], f"{method} {path} failed: {body['message']}"
        return body["data"]

    async def envelope(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Veloera-User": str(self.user_id), **kwargs.pop("headers", {})}
        reply = await self.client.request(method, path, headers=headers, **kwargs)
        assert reply.status_code in (200, 401, 403), reply.text
        body: dict[str, Any] = reply.json()
        return body

    async def aclose(self) -> None:
        await self.client.aclose()


async def login(web_url: str, username: str, password: str) -> Console:
    client = httpx.AsyncClient(base_url=web_url, timeout=10.0)
    reply = await client.post("/api/user/login", json={"username": username, "password": password})
    body = reply.json()
    assert body["success"], body["message"]
    return Console(client=client, user_id=int(body["data"]["id"]))


async def root_console(web_url: str) -> Console:
    """Log in as root, running first-time setup when the system is not initialised yet."""
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        setup = (await client.get("/api/setup")).json()["data"]
        if not setup["status"]:
            reply = await client.post(
                "/api/setup",
                json={
                    "username": ROOT_USERNAME,
                    "password": ROOT_PASSWORD,
                    "confirmPassword": ROOT_PASSWORD,
                },
            )
            assert reply.json()["success"], reply.text
    return await login(web_url, ROOT_USERNAME, ROOT_PASSWORD)


async def create_user(
    root: Console, *, quota: int, group: str = "default", role: int = 1
) -> tuple[Console, int]:
    """A new user with `quota` units, logged in; returns the session and the user id."""
    username, password = unique_name(), "password123"
    await root.call(
        "POST", "/api/user/", json={"username": username, "password": password, "role": role}
    )
    users = await root.call("GET", "/api/user/", params={"p": 1, "page_size": 100})
    user = next(item for item in users["items"] if item["username"] == username)
    edit = {"id": user["id"], "quota": quota, "original_quota": user["quota"], "group": group}
    await root.call("PUT", "/api/user/", json=edit)
    console = await login(root.client.base_url.__str__(), username, password)
    return console, int(user["id"])


async def create_token(console: Console, **fields: Any) -> dict[str, Any]:
    """Create an API key for the console's user; returns the token item including `key`."""
    body = {
        "name": unique_name("k"),
        "remain_quota": 0,
        "unlimited_quota": True,
        "expired_time": -1,
        **fields,
    }
    token: dict[str, Any] = await console.call("POST", "/api/token/", json=body)
    return token


async def create_channel(root: Console, *, base_url: str, models: list[str], **fields: Any) -> int:
    body = {
        "type": 1,
        "name": unique_name("ch"),
        "key": "sk-upstream-" + uuid.uuid4().hex,
        "base_url": base_url,
        "models": ",".join(models),
        "group": "default",
        "priority": 0,
        "weight": 1,
        **fields,
    }
    channel = await root.call("POST", "/api/channel/", json=body)
    return int(channel["id"])
