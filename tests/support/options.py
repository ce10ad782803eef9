"""Options a test changes, put back afterwards: a snapshot of every option (secrets included,
read over gRPC as the operator tool) before the test, and after it each changed option set back
through accounts, which checks prerequisites (a sign-in method needs its credentials first): an
option refused in one pass is retried after the others, until nothing changes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from veloera.accounts.v1 import accounts_pb2

from tests.support.clients import AccountsClient
from tests.support.helpers import admin_channel, root_console

TIMEOUT = 10.0
MAX_PASSES = 5  # each pass restores what its prerequisites allow


async def _all(stub: AccountsClient) -> dict[str, str]:
    reply = await stub.ListOptions(
        accounts_pb2.ListOptionsRequest(include_secrets=True), timeout=TIMEOUT
    )
    return {option.key: option.value for option in reply.options}


async def _put_back(stub: AccountsClient, actor_id: int, before: dict[str, str]) -> None:
    changed: list[str] = []
    for _ in range(MAX_PASSES):
        now = await _all(stub)
        changed = sorted(
            k for k in before.keys() | now.keys() if now.get(k, "") != before.get(k, "")
        )
        if not changed:
            return
        for key in changed:
            request = accounts_pb2.UpdateOptionRequest(
                actor_id=actor_id, key=key, value=before.get(key, "")
            )
            with contextlib.suppress(grpc.aio.AioRpcError):  # a prerequisite is not back yet
                await stub.UpdateOption(request, timeout=TIMEOUT)
    raise AssertionError(f"options that cannot be put back: {changed}")


@pytest.fixture
async def saved_options(web_url: str, accounts_addr: str) -> AsyncIterator[None]:
    """Every option as it was before the test, restored after it however the test ends."""
    root = await root_console(web_url)
    channel = admin_channel(accounts_addr)
    stub = AccountsClient(channel)
    try:
        before = await _all(stub)
        yield
        await _put_back(stub, root.user_id, before)
    finally:
        await channel.close()
        await root.aclose()
