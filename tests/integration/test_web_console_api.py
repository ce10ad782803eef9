"""The read-only endpoints the console pages need (upstream controller/misc.go, model.go,
group.go), the relay's CORS answer for the playground, and the relay address shown."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from services.web.settings import load_settings
from tests.support.helpers import create_channel, create_user, root_console, unique_name
from tests.support.world import eventually

pytestmark = pytest.mark.integration


async def _public(web_url: str, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        body: dict[str, Any] = (await client.get(path)).json()
    return body


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("Notice", "/api/notice"),
        ("About", "/api/about"),
        ("HomePageContent", "/api/home_page_content"),
    ],
)
async def test_admin_texts_are_public(
    web_url: str, key: str, path: str, saved_options: None
) -> None:
    root = await root_console(web_url)
    text = f"# {key} {uuid.uuid4().hex}"
    try:
        await _public(web_url, path)  # fills the web process's options cache
        await root.call("PUT", "/api/option/", json={"key": key, "value": text})
        # a save through this web process is served by its very next request
        assert await _public(web_url, path) == {"success": True, "message": "", "data": text}
    finally:
        await root.aclose()


async def test_user_models_are_those_of_the_users_group(web_url: str) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=0)
    mine, theirs = unique_name("m"), unique_name("m")
    try:
        await create_channel(root, base_url="http://127.0.0.1:9", models=[mine])
        await create_channel(root, base_url="http://127.0.0.1:9", models=[theirs], group="vip")
        models = await user.call("GET", "/api/user/models")
        assert mine in models
        assert theirs not in models
        anonymous = await _public(web_url, "/api/user/models")
        assert anonymous["success"] is False
    finally:
        await user.aclose()
        await root.aclose()


async def test_admin_model_and_group_lists(web_url: str) -> None:
    root = await root_console(web_url)
    user, _ = await create_user(root, quota=0)
    model = unique_name("m")
    try:
        await create_channel(root, base_url="http://127.0.0.1:9", models=[model], type=1)
        by_type = await root.call("GET", "/api/models")
        assert model in by_type["1"]
        options = {o["key"]: o["value"] for o in await root.call("GET", "/api/option/")}
        assert await root.call("GET", "/api/group/") == sorted(json.loads(options["GroupRatio"]))
        for path in ("/api/models", "/api/group/"):
            refused = await user.envelope("GET", path)
            assert refused["success"] is False, path
    finally:
        await user.aclose()
        await root.aclose()


async def test_relay_answers_the_consoles_cors_preflight(relay_url: str) -> None:
    """The playground calls the relay from the web service's origin."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        reply = await client.options(
            f"{relay_url}/v1/chat/completions",
            headers={
                "Origin": "http://127.0.0.1:3001",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "POST" in reply.headers["access-control-allow-methods"]


def test_relay_address_follows_relay_port() -> None:
    settings = load_settings(
        {"SESSION_SECRET": "s" * 32, "INTERNAL_TOKEN_WEB": "w" * 32, "RELAY_PORT": "4123"}
    )
    assert settings.relay_public_url == "http://127.0.0.1:4123"
    explicit = load_settings(
        {
            "SESSION_SECRET": "s" * 32,
            "INTERNAL_TOKEN_WEB": "w" * 32,
            "RELAY_PORT": "4123",
            "RELAY_PUBLIC_URL": "https://api.example/",
        }
    )
    assert explicit.relay_public_url == "https://api.example"


async def test_custom_head_css_and_js_reach_every_page(web_url: str, saved_options: None) -> None:
    root = await root_console(web_url)
    marker = uuid.uuid4().hex
    values = {
        "custom_head_html": f'<meta name="custom" content="{marker}">',
        "global_css": f"/* {marker} */ body {{ margin: 0; }}",
        "global_js": f"window.customMarker = '{marker}';",
    }
    try:
        for key, value in values.items():
            await root.call("PUT", "/api/option/", json={"key": key, "value": value})

        async def served() -> bool | None:
            async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
                page = await client.get("/console/token")
                css = await client.get("/custom/global.css")
                js = await client.get("/custom/global.js")
            if values["custom_head_html"] not in page.text:
                return None
            assert "custom::custom_head" not in page.text
            assert css.text == values["global_css"]
            assert css.headers["content-type"].startswith("text/css")
            assert js.text == values["global_js"]
            return True

        await eventually(served)  # the web process caches options for a few seconds
    finally:
        await root.aclose()
