"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.relay.upstream.http import open_session


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The relay's upstream session, as the relay opens it."""
    http = open_session()
    try:
        yield http
    finally:
        await http.close()
