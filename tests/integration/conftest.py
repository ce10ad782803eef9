"""Integration fixtures: a billing client over real gRPC, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from veloera.billing.v1 import billing_pb2_grpc

from tests.support.helpers import admin_channel


@pytest.fixture
async def billing(billing_addr: str) -> AsyncIterator[billing_pb2_grpc.BillingServiceAsyncStub]:
    channel = admin_channel(billing_addr)
    try:
        yield billing_pb2_grpc.BillingServiceStub(channel)
    finally:
        await channel.close()
