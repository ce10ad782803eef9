"""`veloera import`: new-api and one-api databases moved into the running system.

Sources are built in-process (SQLite files, and a database of their own on the session's
PostgreSQL server); the import writes into the system's database while it runs, then announces
the change so the relay and web services pick it up.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from rich.console import Console as RichConsole
from veloera.billing.v1 import billing_pb2

from services.cli.infra import nats_passwords
from services.cli.main import main
from services.importer.command import import_command
from services.importer.report import Report
from services.importer.run import ImportSettings, run_import
from services.importer.sources import SQLITE_COLUMNS, DbApiSource, Dialect
from tests.support.clients import BillingClient
from tests.support.helpers import PLANE, Console, admin_channel, login
from tests.support.infra import Infra
from tests.support.relay_kit import world as world
from tests.support.upstream_db import (
    OLD_PASSWORD,
    Upstream,
    new_api,
    one_api,
    veloera,
    write_postgres,
    write_sqlite,
)
from tests.support.world import World, eventually, wait_for_model

pytestmark = pytest.mark.e2e
CONSUME = 2
LOGS_OF = "SELECT count(*) AS n FROM billing.logs WHERE username = $1"


def settings(service_env: dict[str, str], source: str, **fields: Any) -> ImportSettings:
    return ImportSettings(
        source=source,
        database_url=service_env["DATABASE_URL"],
        crypto_secret=service_env["CRYPTO_SECRET"],
        source_name=uuid.uuid4().hex,
        **fields,
    )


async def run_cli(options: ImportSettings, service_env: dict[str, str]) -> tuple[Report, str]:
    """The command as `veloera import` runs it: progress bars, report, change events."""
    out = io.StringIO()
    report = await import_command(
        options,
        nats_url=service_env["NATS_URL"],
        console=RichConsole(file=out, width=160),
        nats_passwords=nats_passwords(PLANE),
    )
    assert options.dry_run or not report.changed or "were told" in out.getvalue(), out.getvalue()
    return report, out.getvalue()


async def current_ratios(root: Console) -> dict[str, float]:
    options = {item["key"]: item["value"] for item in await root.call("GET", "/api/option/")}
    ratios: dict[str, float] = json.loads(options.get("ModelRatio") or "{}")
    return ratios


async def check_ledger(billing_addr: str, user_ids: list[int]) -> billing_pb2.CheckLedgerResponse:
    async with admin_channel(billing_addr) as channel:
        stub = BillingClient(channel)
        return await stub.CheckLedger(billing_pb2.CheckLedgerRequest(user_ids=user_ids))


async def chat(relay_url: str, key: str, model: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as client:
        return await client.post(
            f"{relay_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer sk-{key}"},
            json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        )


async def charged_after_chat(world: World, customer: Console, key: str, model: str) -> int:
    """One chat through the relay with an imported key; the amount the wallet went down."""
    before = await customer.call("GET", "/api/user/self")
    await wait_for_model(world.relay_url, key, model)
    reply = await chat(world.relay_url, key, model)
    assert reply.status_code == 200, reply.text

    async def settled() -> int | None:
        after = await customer.call("GET", "/api/user/self")
        spent = int(before["quota"]) - int(after["quota"])
        return spent if spent > 0 else None

    return await eventually(settled)


async def user_ids(service_env: dict[str, str], usernames: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        rows = await conn.fetch(
            "SELECT username, id FROM accounts.users WHERE username = ANY($1::text[])", usernames
        )
    finally:
        await conn.close()
    return {row["username"]: row["id"] for row in rows}


async def fetch(service_env: dict[str, str], sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def counts(report: Report) -> dict[str, tuple[int, int]]:
    """table -> (imported by this run, imported before)."""
    return {name: (t.imported, t.already) for name, t in report.tables.items()}


@pytest.fixture
async def new_api_db(world: World, tmp_path: Path) -> AsyncIterator[tuple[Upstream, Path]]:
    upstream = new_api(upstream_url=world.fake.url, model_ratio=await current_ratios(world.root))
    yield upstream, write_sqlite(upstream, tmp_path / "new-api.db")


async def test_dry_run_reports_everything_and_writes_nothing(
    world: World, service_env: dict[str, str], new_api_db: tuple[Upstream, Path]
) -> None:
    upstream, path = new_api_db
    report, printed = await run_cli(settings(service_env, str(path), dry_run=True), service_env)
    assert report.tables["users"].imported == 4
    assert report.tables["logs"].imported == 13
    skipped = set(report.tables["options"].skipped)
    assert "unknown option ChatLink" in skipped
    assert any(reason.startswith("option RetryTimes") for reason in skipped)
    assert "would import" in printed and "new-api v0.6.10" in printed
    assert await user_ids(service_env, list(upstream.usernames.values())) == {}
    reply = await chat(world.relay_url, upstream.keys["alice"], upstream.model)
    assert reply.status_code == 401


async def test_new_api_import_keeps_keys_passwords_balances_and_logs(
    world: World,
    service_env: dict[str, str],
    billing_addr: str,
    new_api_db: tuple[Upstream, Path],
) -> None:
    upstream, path = new_api_db
    options = settings(service_env, str(path), log_batch_size=5)
    report, printed = await run_cli(options, service_env)

    assert report.ok, printed
    assert counts(report)["users"] == (4, 0)
    tokens = report.tables["tokens"]
    assert (tokens.imported, dict(tokens.skipped)) == (
        2, {"deleted key": 1, "owner was not imported": 1}
    )  # fmt: skip
    assert counts(report)["channels"] == (2, 0) and counts(report)["abilities"] == (3, 0)
    assert report.tables["options"].imported == 2  # ModelRatio, About
    assert "unknown option ChatLink" in report.tables["options"].skipped
    assert counts(report)["redemptions"] == (2, 0)
    assert counts(report)["logs"] == (13, 0)
    assert report.tables["midjourneys"].skipped == {"Midjourney tasks are not supported yet": 1}
    quota_data = report.tables["quota_data"]
    assert (quota_data.imported, dict(quota_data.skipped)) == (2, {"user was not imported": 1})
    assert report.tables["users"].notes["negative balance imported as 0"] == 1
    assert report.tables["channels"].notes["model_mapping is not a JSON object: dropped"] == 1

    # The old password logs in (bcrypt), and is argon2 from then on.
    names = upstream.usernames
    alice = await login(world.web_url, names["alice"], OLD_PASSWORD)
    world.consoles.append(alice)
    [stored] = await fetch(
        service_env, "SELECT password_hash FROM accounts.users WHERE id = $1", alice.user_id
    )
    assert stored["password_hash"].startswith("$argon2")
    world.consoles.append(await login(world.web_url, names["alice"], OLD_PASSWORD))
    me = await alice.call("GET", "/api/user/self")
    assert (me["quota"], me["used_quota"], me["request_count"]) == (5_000_000, 1_234, 7)

    # The management access token still works.
    async with httpx.AsyncClient(base_url=world.web_url, timeout=10.0) as client:
        reply = await client.get(
            "/api/user/self",
            headers={"Authorization": upstream.access_token, "Veloera-User": str(alice.user_id)},
        )
    assert reply.json()["data"]["username"] == names["alice"]

    # Logs are there with their filters, attributed to the imported user, key and channel.
    page = await world.root.call(
        "GET",
        "/api/log/",
        params={"username": names["alice"], "model_name": upstream.model, "type": CONSUME},
    )
    assert page["total"] == 12
    assert {item["token_name"] for item in page["items"]} == {"main key"}
    own = await alice.call("GET", "/api/log/self", params={"token_name": "main key"})
    assert own["total"] == 12

    # The same sk- key authenticates at the relay and is charged.
    spent = await charged_after_chat(world, alice, upstream.keys["alice"], upstream.model)
    newest = (await alice.call("GET", "/api/log/self", params={"type": CONSUME}))["items"][0]
    assert newest["quota"] == spent and newest["model_name"] == upstream.model

    # The dashboard's hourly rollups: the source's two rows of one hour added together.
    [hour] = await fetch(
        service_env,
        "SELECT count, quota, token_used FROM billing.quota_data"
        " WHERE user_id = $1 AND model_name = $2 AND created_at < now() - interval '1 hour'",
        alice.user_id,
        upstream.model,
    )
    assert (hour["count"], hour["quota"], hour["token_used"]) == (2, 200, 30)

    ids = await user_ids(service_env, list(names.values()))
    assert len(ids) == 4
    ledger = await check_ledger(billing_addr, list(ids.values()))
    assert ledger.consistent and ledger.wallets_checked == 4

    # A second run changes nothing.
    again, _ = await run_cli(options, service_env)
    assert again.changed == 0 and again.ok
    assert counts(again)["users"] == (0, 4) and counts(again)["logs"] == (0, 13)
    assert counts(again)["quota_data"] == (0, 3)
    rows = await fetch(
        service_env,
        "SELECT count(*) AS n FROM billing.logs WHERE username = $1 AND model_name = $2",
        names["alice"],
        upstream.model,
    )
    assert rows[0]["n"] == 13  # 12 imported + the chat above


async def postgres_source(infra: Infra, upstream: Upstream) -> str:
    """A database of its own on the session's server, holding `upstream`."""
    name = f"upstream_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = infra.database_url.rpartition("/")
    dsn = f"{base}/{name}"
    await write_postgres(upstream, dsn)
    return dsn


class Interrupted(Exception):
    pass


class StopAfterFirstLogPage:
    """Progress that stops the import once the first page of logs was committed."""

    def begin(self, table: str, total: int) -> None:
        pass

    def advance(self, table: str, count: int) -> None:
        if table == "logs" and count:
            raise Interrupted


async def test_one_api_on_postgres_resumes_after_an_interruption(
    world: World, service_env: dict[str, str], infra: Infra
) -> None:
    upstream = one_api(upstream_url=world.fake.url)
    dsn = await postgres_source(infra, upstream)
    options = settings(service_env, dsn, log_batch_size=2)
    with pytest.raises(Interrupted):
        await run_import(options, bars=StopAfterFirstLogPage())
    name = upstream.usernames["alice"]
    logged = await fetch(
        service_env, "SELECT count(*) AS n FROM billing.logs WHERE username = $1", name
    )
    interrupted_at = logged[0]["n"]
    assert 0 < interrupted_at < 5  # a page or two of two rows each

    report, printed = await run_cli(options, service_env)
    assert report.ok, printed
    assert "one-api" in report.product
    assert counts(report)["users"] == (0, 1)
    assert counts(report)["logs"] == (5 - interrupted_at, interrupted_at)
    logged = await fetch(
        service_env, "SELECT count(*) AS n FROM billing.logs WHERE username = $1", name
    )
    assert logged[0]["n"] == 5

    alice = await login(world.web_url, name, OLD_PASSWORD)
    world.consoles.append(alice)
    me = await alice.call("GET", "/api/user/self")
    assert me["quota"] == 800_000
    await world.root.call(
        "PUT",
        "/api/option/",
        json={"key": "ModelRatio", "value": json.dumps(
            {**await current_ratios(world.root), upstream.model: 1.0})},
    )  # fmt: skip
    assert await charged_after_chat(world, alice, upstream.keys["alice"], upstream.model) > 0

    # The old system wrote one more log row before it was stopped: a last run brings only it.
    source = await asyncpg.connect(dsn)
    try:
        await source.execute(
            "INSERT INTO logs (id, user_id, created_at, type, content, username, token_name,"
            " model_name, quota, prompt_tokens, completion_tokens, channel_id, is_stream)"
            " VALUES (6, 7, $1, 2, '', $2, 'one key', $3, 10, 1, 1, 1, false)",
            int(time.time()), name, upstream.model,
        )  # fmt: skip
    finally:
        await source.close()
    last, _ = await run_cli(options, service_env)
    assert last.changed == 1 and counts(last)["logs"] == (1, 5)
    assert (await fetch(service_env, LOGS_OF, name))[0]["n"] == 7  # 6 imported + the chat


async def test_mysql_dialect_reads_the_same_fixture(
    world: World, service_env: dict[str, str], tmp_path: Path
) -> None:
    """No MySQL server here: the MySQL dialect's statements (backtick quoting, inlined page
    bounds) run against a SQLite copy of the fixture, which accepts them unchanged."""
    upstream = new_api(upstream_url=world.fake.url, model_ratio=await current_ratios(world.root))
    path = write_sqlite(upstream, tmp_path / "mysql-shaped.db")
    conn = sqlite3.connect(path, check_same_thread=False)
    source = DbApiSource(conn, Dialect("mysql", "`", SQLITE_COLUMNS), "mysql-dialect")
    options = settings(service_env, "mysql://fixture")
    report = await run_import(options, source=source)
    assert report.ok
    assert counts(report)["users"] == (4, 0) and counts(report)["logs"] == (13, 0)
    assert counts(report)["tokens"] == (2, 0)
    alice = await login(world.web_url, upstream.usernames["alice"], OLD_PASSWORD)
    world.consoles.append(alice)
    assert (await alice.call("GET", "/api/user/self"))["quota"] == 5_000_000


def test_veloera_import_command_dry_run(
    service_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """`veloera import --from FILE --dry-run` with the services' environment: exit 0, the
    report printed, nothing written."""
    upstream = new_api(upstream_url="http://127.0.0.1:9", model_ratio={})
    path = write_sqlite(upstream, tmp_path / "cli.db")
    for name in ("DATABASE_URL", "NATS_URL", "CRYPTO_SECRET"):
        monkeypatch.setenv(name, service_env[name])
    monkeypatch.setenv("VELOERA_DATA_DIR", str(tmp_path / "data"))
    assert main(["import", "--from", str(path), "--dry-run", "--source-name", "cli"]) == 0
    printed = capfd.readouterr().out  # the importer runs as its own process
    assert "(dry run)" in printed and "unknown option ChatLink" in printed
    missing = main(["import", "--from", str(tmp_path / "absent.db")])
    assert missing == 2 and "no SQLite database" in capfd.readouterr().err


async def test_veloera_subscription_balances_and_gift_codes(
    world: World, service_env: dict[str, str], billing_addr: str, tmp_path: Path
) -> None:
    upstream = veloera(upstream_url=world.fake.url, model_ratio=await current_ratios(world.root))
    path = write_sqlite(upstream, tmp_path / "veloera.db")
    report, printed = await run_cli(settings(service_env, str(path)), service_env)
    assert report.ok, printed
    assert report.product.startswith("veloera")
    assert counts(report)["redemptions"] == (3, 0)
    uses = report.tables["redemption_logs"]
    assert (uses.imported, dict(uses.skipped)) == (2, {"code or user was not imported": 1})

    ids = await user_ids(service_env, [upstream.usernames["alice"]])
    [alice_id] = ids.values()
    [wallet] = await fetch(
        service_env,
        "SELECT quota, subscription_quota FROM billing.wallets WHERE user_id = $1",
        alice_id,
    )
    assert (wallet["quota"], wallet["subscription_quota"]) == (5_000_000, 3_000)
    assert (await check_ledger(billing_addr, [alice_id])).consistent
    gift = upstream.rows("redemptions")[2]
    [code] = await fetch(
        service_env,
        "SELECT id, is_gift, max_uses, used_count, valid_until FROM billing.redemptions"
        " WHERE key = $1",
        gift["key"],
    )
    assert (code["is_gift"], code["max_uses"], code["used_count"]) == (True, 10, 2)
    assert code["valid_until"] == gift["valid_until"]
    used_by = await fetch(
        service_env, "SELECT user_id FROM billing.redemption_logs WHERE redemption_id = $1",
        code["id"],
    )  # fmt: skip
    assert alice_id in {row["user_id"] for row in used_by}
    # The gift code was used by alice already: redeeming it again is refused.
    alice = await login(world.web_url, upstream.usernames["alice"], OLD_PASSWORD)
    world.consoles.append(alice)
    again = await alice.envelope("POST", "/api/user/topup", json={"key": gift["key"]})
    assert not again["success"]


async def test_a_second_import_at_the_same_time_is_refused(
    world: World, service_env: dict[str, str], new_api_db: tuple[Upstream, Path]
) -> None:
    _, path = new_api_db
    holder = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        await holder.fetchval("SELECT pg_advisory_lock(hashtext('veloera-import'))")
        with pytest.raises(RuntimeError, match="another veloera import is running"):
            await run_import(settings(service_env, str(path)))
    finally:
        await holder.close()
