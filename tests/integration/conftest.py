"""Integration fixtures: a billing client over real gRPC, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.clients import BillingClient
from tests.support.helpers import admin_channel


@pytest.fixture
async def billing(billing_addr: str) -> AsyncIterator[BillingClient]:
    channel = admin_channel(billing_addr)
    try:
        yield BillingClient(channel)
    finally:
        await channel.close()
