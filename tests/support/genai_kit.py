"""The official `google-genai` SDK pointed at the relay, for the Gemini-ingress tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from google import genai
from google.genai import types

from tests.support.world import World


@pytest.fixture
async def clients() -> AsyncIterator[list[genai.Client]]:
    """google-genai clients made by `client()`, closed (with their HTTP clients) when the
    test ends."""
    made: list[genai.Client] = []
    yield made
    for item in made:
        await item.aio.aclose()
        http = item._api_client._http_options.httpx_async_client
        if http is not None:
            await http.aclose()


def client(
    world: World, made: list[genai.Client], key: str, api_version: str | None = None
) -> genai.Client:
    """The SDK pointed at the relay (http_options.base_url), as the README tells; without an
    api_version it speaks its default, v1. An httpx client of our own: the SDK's aiohttp
    session subclasses ClientSession, which aiohttp warns about."""
    options = types.HttpOptions(
        base_url=world.relay_url,
        api_version=api_version,
        retry_options=types.HttpRetryOptions(attempts=1),
        httpx_async_client=httpx.AsyncClient(timeout=30.0),
    )
    item = genai.Client(api_key=f"sk-{key}", http_options=options)
    made.append(item)
    return item
