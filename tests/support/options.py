"""Options a test changes, put back afterwards: a snapshot of every option before the test and,
after it, each changed option set back. `saved_options` (or `restored_options` around a
block): accounts' options (secrets included, read over gRPC as the operator tool), set back
through the console, which checks prerequisites (a sign-in method needs its credentials
first). `saved_pricing`: billing's pricing options, set back through billing, which checks
them too (fallback pricing needs its prices). An option refused in one pass is retried after
the others, until nothing changes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from tests.support.clients import AccountsClient, BillingClient
from tests.support.helpers import admin_channel, root_console

TIMEOUT = 10.0
MAX_PASSES = 5  # each pass restores what its prerequisites allow


async def _put_back(
    read: Callable[[], Awaitable[dict[str, str]]],
    write: Callable[[str, str], Awaitable[object]],
    before: dict[str, str],
) -> None:
    changed: list[str] = []
    for _ in range(MAX_PASSES):
        now = await read()
        changed = sorted(
            k for k in before.keys() | now.keys() if now.get(k, "") != before.get(k, "")
        )
        if not changed:
            return
        for key in changed:
            with contextlib.suppress(grpc.aio.AioRpcError):  # a prerequisite is not back yet
                await write(key, before.get(key, ""))
    raise AssertionError(f"options that cannot be put back: {changed}")


@contextlib.asynccontextmanager
async def restored_options(web_url: str, accounts_addr: str) -> AsyncIterator[None]:
    """Every accounts option as it was on entry, set back on exit however the block ends.
    Written back through the console (as an admin would), so the web process's options
    cache forgets the test's values at once; read over gRPC, where secrets are not masked."""
    root = await root_console(web_url)
    channel = admin_channel(accounts_addr)
    stub = AccountsClient(channel)

    async def read() -> dict[str, str]:
        request = accounts_pb2.ListOptionsRequest(include_secrets=True)
        reply = await stub.ListOptions(request, timeout=TIMEOUT)
        return {option.key: option.value for option in reply.options}

    async def write(key: str, value: str) -> object:
        # a refusal (a prerequisite not back yet) is retried in the next pass
        return await root.envelope("PUT", "/api/option/", json={"key": key, "value": value})

    try:
        before = await read()
        yield
        await _put_back(read, write, before)
    finally:
        await channel.close()
        await root.aclose()


@pytest.fixture
async def saved_options(web_url: str, accounts_addr: str) -> AsyncIterator[None]:
    """Every accounts option as it was before the test, restored after it however it ends."""
    async with restored_options(web_url, accounts_addr):
        yield


@pytest.fixture
async def saved_pricing(billing_addr: str) -> AsyncIterator[None]:
    """Every billing pricing option as it was before the test, restored after it."""
    channel = admin_channel(billing_addr)
    stub = BillingClient(channel)

    async def read() -> dict[str, str]:
        reply = await stub.GetPricingOptions(
            billing_pb2.GetPricingOptionsRequest(), timeout=TIMEOUT
        )
        return {option.key: option.value for option in reply.options}

    async def write(key: str, value: str) -> object:
        request = billing_pb2.UpdatePricingOptionRequest(key=key, value=value)
        return await stub.UpdatePricingOption(request, timeout=TIMEOUT)

    try:
        before = await read()
        yield
        await _put_back(read, write, before)
    finally:
        await channel.close()
