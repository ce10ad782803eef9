"""Secret options (SMTP, OAuth, EPay) are encrypted at rest in accounts and billing, read back
decrypted where they are used, and plaintext left by older versions is encrypted at start."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import asyncpg
import pytest
from veloera.accounts.v1 import accounts_pb2 as pb
from veloera.billing.v1 import billing_pb2

from services.cli.infra import free_port
from services.cli.supervisor import Child, ServiceSpec, start_all, stop_all
from tests.support.clients import AccountsClient, BillingClient
from tests.support.helpers import admin_channel, root_console

pytestmark = pytest.mark.integration


class Infra(Protocol):
    database_url: str
    work_dir: Path


async def _stored(infra: Infra, sql: str, key: str) -> str:
    conn = await asyncpg.connect(infra.database_url)
    try:
        value: str = await conn.fetchval(sql, key)
    finally:
        await conn.close()
    return value


ACCOUNTS_VALUE = "SELECT value FROM accounts.options WHERE key = $1"
BILLING_VALUE = "SELECT value FROM billing.pricing_options WHERE key = $1"


async def test_secret_options_are_encrypted_at_rest(
    web_url: str,
    accounts_addr: str,
    billing: BillingClient,
    infra: Infra,
) -> None:
    root = await root_console(web_url)
    smtp_token, client_secret, epay_key = (f"s3cret-{uuid.uuid4().hex[:10]}" for _ in range(3))
    try:
        for key, value in (
            ("SMTPToken", smtp_token),
            ("GitHubClientSecret", client_secret),
            ("EpayKey", epay_key),
        ):
            await root.call("PUT", "/api/option/", json={"key": key, "value": value})
    finally:
        await root.aclose()
    for sql, key, value in (
        (ACCOUNTS_VALUE, "SMTPToken", smtp_token),
        (ACCOUNTS_VALUE, "GitHubClientSecret", client_secret),
        (ACCOUNTS_VALUE, "EpayKey", epay_key),
        (BILLING_VALUE, "EpayKey", epay_key),
    ):
        stored = await _stored(infra, sql, key)
        assert stored.startswith("v1:") and value not in stored, key
    async with admin_channel(accounts_addr) as channel:
        stub = AccountsClient(channel)
        reply = await stub.ListOptions(pb.ListOptionsRequest(include_secrets=True))
    options = {o.key: o.value for o in reply.options}
    assert options["SMTPToken"] == smtp_token
    assert options["GitHubClientSecret"] == client_secret
    pricing = await billing.GetPricingOptions(billing_pb2.GetPricingOptionsRequest())
    assert {o.key: o.value for o in pricing.options}["EpayKey"] == epay_key


@pytest.fixture
def start_accounts(service_env: dict[str, str], infra: Infra) -> Iterator[Callable[[], None]]:
    """Starts another accounts replica (the same database) when called; stopped afterwards."""
    port = free_port()
    env = {**service_env, "ACCOUNTS_PORT": str(port), "ACCOUNTS_METRICS_PORT": str(free_port())}
    child = Child(
        ServiceSpec("accounts", grpc_addr=f"127.0.0.1:{port}"),
        env,
        log_path=infra.work_dir / "accounts-reseal.log",
    )

    def start() -> None:
        asyncio.run(start_all([child]))

    try:
        yield start
    finally:
        stop_all([child])


async def test_plaintext_left_by_an_older_version_is_encrypted_at_start(
    web_url: str, infra: Infra, start_accounts: Callable[[], None]
) -> None:
    await (await root_console(web_url)).aclose()
    token = f"legacy-{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(
            "INSERT INTO accounts.options (key, value) VALUES ('WeChatServerToken', $1)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            token,
        )
    finally:
        await conn.close()
    await asyncio.to_thread(start_accounts)
    stored = await _stored(infra, ACCOUNTS_VALUE, "WeChatServerToken")
    assert stored.startswith("v1:") and token not in stored
