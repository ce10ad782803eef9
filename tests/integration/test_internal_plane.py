"""The internal plane refuses whoever lacks a service credential: gRPC, NATS and PostgreSQL.

Each test reaches a server the way an intruder on the internal network would (a plain client, or
a stolen relay credential) and checks it gets nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import grpc
import nats
import nats.errors
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.aio.client import Client as NATS
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.cli import infra as infra_module
from services.cli.infra import EmbeddedPostgres, free_port, new_secret
from services.shared import internal_auth, nats_auth, subjects
from services.shared.config import Secret
from services.shared.grpcutil import open_channel
from tests.support.clients import AccountsClient, BillingClient
from tests.support.helpers import RELAY
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
MINT = billing_pb2.AdjustQuotaRequest(
    idempotency_key="intruder-mint", user_id=1, delta=12_345, reason="free money"
)
REVEAL = accounts_pb2.RevealChannelKeyRequest(actor_id=1, channel_id=1)
SECRETS = accounts_pb2.ListOptionsRequest(include_secrets=True)


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    code: grpc.StatusCode = caught.value.code()
    return code


@pytest.fixture
async def plain(accounts_addr: str, billing_addr: str) -> AsyncIterator[tuple[object, object]]:
    """Stubs over channels that present no credential at all."""
    accounts = grpc.aio.insecure_channel(accounts_addr)
    billing = grpc.aio.insecure_channel(billing_addr)
    try:
        yield (
            AccountsClient(accounts),
            BillingClient(billing),
        )
    finally:
        await accounts.close()
        await billing.close()


async def test_a_call_without_a_credential_is_unauthenticated(
    plain: tuple[AccountsClient, BillingClient],
    billing_addr: str,
) -> None:
    accounts, billing = plain
    assert (
        await _code(billing.AdjustQuota(MINT, timeout=TIMEOUT)) == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await _code(accounts.RevealChannelKey(REVEAL, timeout=TIMEOUT))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await _code(accounts.ListOptions(SECRETS, timeout=TIMEOUT))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    # Health probes stay open (orchestrators and `veloera up` use them).
    async with grpc.aio.insecure_channel(billing_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_wrong_or_borrowed_name_token_is_unauthenticated(billing_addr: str) -> None:
    """A guessed token, and the relay's token presented under web's name, are both refused."""
    for credential in (
        internal_auth.Credential(internal_auth.WEB, Secret("x" * 43)),
        internal_auth.Credential(internal_auth.WEB, RELAY.token),
    ):
        channel = open_channel(billing_addr, credential)
        try:
            stub = BillingClient(channel)
            code = await _code(stub.AdjustQuota(MINT, timeout=TIMEOUT))
            assert code == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await channel.close()


async def test_the_relay_may_not_mint_quota_reveal_keys_or_read_secret_options(
    accounts_addr: str, billing_addr: str
) -> None:
    accounts_channel = open_channel(accounts_addr, RELAY)
    billing_channel = open_channel(billing_addr, RELAY)
    try:
        accounts = AccountsClient(accounts_channel)
        billing = BillingClient(billing_channel)
        denied = grpc.StatusCode.PERMISSION_DENIED
        assert await _code(billing.AdjustQuota(MINT, timeout=TIMEOUT)) == denied
        assert await _code(accounts.RevealChannelKey(REVEAL, timeout=TIMEOUT)) == denied
        assert await _code(accounts.ListOptions(SECRETS, timeout=TIMEOUT)) == denied
        # Its own request path still works with the same credential.
        reply = await billing.GetPricingOptions(
            billing_pb2.GetPricingOptionsRequest(), timeout=TIMEOUT
        )
        assert reply.options
    finally:
        await accounts_channel.close()
        await billing_channel.close()


async def test_nats_refuses_a_client_without_credentials(infra: Infra) -> None:
    assert infra.nats is not None
    client = NATS()
    try:
        with pytest.raises((nats.errors.Error, OSError)):
            await client.connect(
                infra.nats.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3
            )
    finally:
        await client.close()  # nats-py leaves the refused socket open otherwise


async def test_the_relay_nats_user_cannot_announce_changes(infra: Infra) -> None:
    """The relay may publish settlements, not account or price changes: the server drops the
    message and reports a permissions violation."""
    assert infra.nats is not None
    watcher = await nats.connect(infra.nats_url)  # the unrestricted test user
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    relay = await nats.connect(
        infra.nats.url_for(nats_auth.RELAY), error_cb=on_error, allow_reconnect=False
    )
    try:
        seen = await watcher.subscribe(subjects.PRICES_CHANGED)
        await watcher.flush()
        await relay.publish(subjects.PRICES_CHANGED, b"ModelRatio")
        await relay.publish(subjects.ACCOUNTS_CHANGED, b"forged")
        await relay.flush()
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.1)
        assert any("permissions violation" in str(exc).lower() for exc in errors), errors
        with pytest.raises(nats.errors.TimeoutError):
            await seen.next_msg(timeout=0.5)
    finally:
        await relay.close()
        await watcher.close()


async def test_the_embedded_postgresql_wants_a_password(infra: Infra) -> None:
    parts = urlsplit(infra.database_url)
    host, port = parts.hostname, parts.port
    assert parts.password  # the DSN the services get carries the generated password
    for password in (None, "wrong-password"):
        with pytest.raises(
            (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)
        ):
            await asyncpg.connect(
                host=host,
                port=port,
                user="postgres",
                password=password,
                database="veloera",
                timeout=10.0,
            )


def test_a_data_dir_made_with_trust_auth_requires_the_password_after_a_restart(
    tmp_path: Path,
) -> None:
    """A data directory from an older `veloera up` (initdb --auth=trust) is switched to
    scram-sha-256 with the generated password on its next start.

    Runs in a fresh interpreter: forking PostgreSQL as another user from a process with live
    gRPC channels can crash the child in gRPC's fork handlers."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {__name__} as t; t.upgrade_from_trust({str(tmp_path)!r})"],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": ":".join(sys.path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "password refused, password accepted" in done.stdout


def upgrade_from_trust(work_dir: str) -> None:
    pgdata = Path(work_dir) / "postgres"
    user = infra_module._pg_user()
    pgdata.mkdir(mode=0o700)
    if user is not None:
        os.chown(pgdata, user.pw_uid, user.pw_gid)
        infra_module._open_prefix(pgdata.parent)
    subprocess.run(
        [str(infra_module.postgres_bin() / "initdb"), "-D", str(pgdata), "--auth=trust",
         "-U", "postgres", "--no-sync"],
        check=True, capture_output=True, timeout=120, user=user.pw_uid if user else None,
    )  # fmt: skip
    pg = EmbeddedPostgres(pgdata, free_port(), password=new_secret())
    pg.start()
    try:
        asyncio.run(_password_required(pg))
    finally:
        pg.stop()


async def _password_required(pg: EmbeddedPostgres) -> None:
    try:
        await asyncpg.connect(
            host="127.0.0.1", port=pg.port, user="postgres", database="veloera", timeout=10
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        print("password refused", end=", ")
    conn = await asyncpg.connect(pg.dsn, timeout=10)
    if await conn.fetchval("SELECT 1") == 1:
        print("password accepted")
    await conn.close()
