"""The import itself: options, users (wallets), keys, channels, codes, logs, then checks.

Order matters: users before everything that references them. Each batch commits with its id
mappings (resumable, idempotent); logs are copied in pages by source id with COPY (`logs.py`).
A dry run does all of it inside one transaction that is rolled back, so it reports exactly what
a real run would do, conflicts included.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from services.accounts import user_rules
from services.importer import convert, target
from services.importer.context import Ctx, Quiet, Reporter, append_row, begin, pages
from services.importer.detect import Product, detect
from services.importer.logs import import_logs, import_quota_data
from services.importer.report import Check, Report, TableReport
from services.importer.sources import Source, open_source, schema
from services.shared.crypto import SecretBox
from services.shared.statuses import Role

# Columns read from each upstream table (whichever of them the source has).
USER_COLUMNS = (
    "id", "username", "password", "display_name", "role", "status", "email", "github_id",
    "oidc_id", "wechat_id", "telegram_id", "linux_do_id", "idc_flare_id", "lark_id",
    "access_token", "quota", "used_quota", "request_count", "subscription_quota", "group",
    "aff_code", "aff_count", "aff_quota", "aff_history", "inviter_id", "setting", "created_at",
    "deleted_at",
)  # fmt: skip
TOKEN_COLUMNS = (
    "id", "user_id", "key", "status", "name", "created_time", "accessed_time", "expired_time",
    "remain_quota", "unlimited_quota", "used_quota", "model_limits_enabled", "model_limits",
    "models", "allow_ips", "subnet", "group", "rate_limit_enabled", "rate_limit_period",
    "rate_limit_count", "rate_limit_success", "deleted_at",
)  # fmt: skip
CHANNEL_COLUMNS = (
    "id", "type", "key", "openai_organization", "test_model", "status", "name", "weight",
    "created_time", "test_time", "response_time", "base_url", "other", "balance",
    "balance_updated_time", "models", "group", "model_mapping", "status_code_mapping", "priority",
    "auto_ban", "other_info", "tag", "setting", "param_override", "model_prefix",
    "system_prompt", "config",
)  # fmt: skip
ABILITY_COLUMNS = ("group", "model", "channel_id", "enabled", "priority", "weight", "tag")
REDEMPTION_COLUMNS = (
    "id", "user_id", "key", "status", "name", "quota", "created_time", "redeemed_time",
    "used_user_id", "valid_from", "valid_until", "expired_time", "is_gift", "max_uses",
    "used_count", "deleted_at",
)  # fmt: skip
# Upstream tables with no home here yet: counted and reported as skipped.
NOT_IMPORTED = {
    "midjourneys": "Midjourney tasks are not supported yet",
    "tasks": "asynchronous tasks (Suno) are not supported yet",
    "top_ups": "payment orders stay with the old system (balances are imported)",
    "messages": "inbox messages are not imported",
    "user_messages": "inbox messages are not imported",
}


@dataclass(frozen=True, slots=True)
class ImportSettings:
    source: str  # SQLite file, sqlite:///path, postgres://..., mysql://...
    database_url: str
    crypto_secret: str
    source_name: str = "default"  # keys the id mappings: one name per source database
    dry_run: bool = False
    batch_size: int = 1000
    log_batch_size: int = 20_000
    log_writers: int = 2  # connections copying log pages at once


async def run_import(
    settings: ImportSettings, *, bars: Reporter | None = None, source: Source | None = None
) -> Report:
    """Import everything from `settings.source` (or an already open `source`); returns the
    report, checks included."""
    source = source or await open_source(settings.source)
    try:
        tables = await schema(source)
        product = detect(tables, version=await _setup_version(source, tables))
        conn = await target.connect(settings.database_url)
        try:
            return await _run(settings, source, tables, product, conn, bars or Quiet())
        finally:
            await conn.close()
    finally:
        await source.close()


async def _setup_version(source: Source, tables: dict[str, set[str]]) -> str:
    if "version" not in tables.get("setups", set()):
        return ""
    rows = await source.fetch(source.dialect.select_all("setups", ["version"]))
    return convert.text(rows[-1][0]) if rows else ""


async def _run(
    settings: ImportSettings,
    source: Source,
    tables: dict[str, set[str]],
    product: Product,
    conn: target.Conn,
    bars: Reporter,
) -> Report:
    report = Report(product=product.describe(), dry_run=settings.dry_run)
    ctx = Ctx(
        database_url=settings.database_url, source=source, tables=tables, conn=conn,
        box=SecretBox(settings.crypto_secret),
        name=settings.source_name, dry_run=settings.dry_run, batch=settings.batch_size,
        log_batch=settings.log_batch_size, log_writers=max(settings.log_writers, 1),
        report=report, bars=bars,
    )  # fmt: skip
    await target.ensure_schema(conn)
    if not await conn.fetchval(target.TRY_LOCK):  # released when the connection closes
        raise RuntimeError("another veloera import is running against this database")
    outer = conn.transaction() if settings.dry_run else None
    if outer is not None:
        await outer.start()
    try:
        run_id = await conn.fetchval(
            target.START_RUN, ctx.name, product.describe(), settings.dry_run
        )
        await import_options(ctx)
        await import_users(ctx)
        await import_tokens(ctx)
        await import_channels(ctx)
        await import_redemptions(ctx)
        await import_logs(ctx)
        await import_quota_data(ctx)
        await count_not_imported(ctx)
        await run_checks(ctx)
        await conn.execute(target.FINISH_RUN, run_id, orjson.dumps(report.as_dict()).decode())
    finally:
        if outer is not None:
            await outer.rollback()
    report.option_keys, report.pricing_keys = ctx.option_keys, ctx.pricing_keys
    return report


# ---------------------------------------------------------------- options


async def import_options(ctx: Ctx) -> None:
    if "options" not in ctx.tables:
        return
    item = await begin(ctx, "options")
    rows = await ctx.source.fetch(ctx.source.dialect.select_all("options", ["key", "value"]))
    async with ctx.conn.transaction():
        done = await target.mapped(ctx.conn, ctx.name, "options", [str(r[0]) for r in rows])
        stored: list[tuple[str, int]] = []
        for raw_key, raw_value in rows:
            key = str(raw_key)
            if key in done:
                item.already += 1
                continue
            try:
                opt = convert.option(key, convert.text(raw_value))
            except convert.Unmappable as exc:
                item.skip(str(exc))
                continue
            if opt.to_accounts:
                await ctx.conn.execute(target.UPSERT_ACCOUNTS_OPTION, opt.key, opt.value)
                ctx.option_keys.append(opt.key)
            if opt.to_billing:
                await ctx.conn.execute(target.UPSERT_PRICING_OPTION, opt.key, opt.value)
                ctx.pricing_keys.append(opt.key)
            stored.append((key, 0))
            item.imported += 1
        await target.record(ctx.conn, ctx.name, "options", stored)
        if ctx.option_keys:  # relays reload options with the routing snapshot
            await ctx.conn.fetchval(target.BUMP_ROUTING)
    ctx.bars.advance("options", len(rows))


# ---------------------------------------------------------------- users and wallets


async def import_users(ctx: Ctx) -> None:
    item = await begin(ctx, "users")
    columns = ctx.columns("users", USER_COLUMNS)
    async for rows in pages(ctx, "users", columns):
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        async with ctx.conn.transaction():
            await _user_batch(ctx, item, records)
        ctx.bars.advance("users", len(rows))
    await _resolve_inviters(ctx)
    if ctx.root_user_id and await ctx.conn.fetchval(target.NO_SETUP):
        await ctx.conn.execute(target.INSERT_SETUP, ctx.root_user_id, ctx.now)


async def _user_batch(ctx: Ctx, item: TableReport, records: list[dict[str, Any]]) -> None:
    conn = ctx.conn
    done = await target.mapped(conn, ctx.name, "users", [str(r["id"]) for r in records])
    item.already += len(done)
    users: list[tuple[int, convert.User]] = []
    for record in records:
        if str(record["id"]) in done:
            continue
        try:
            value, notes = convert.user(record, now=ctx.now)
        except convert.Unmappable as exc:
            item.skip(str(exc))
            continue
        item.notes.update(notes)
        users.append((int(record["id"]), value))
    if not users:
        return
    names = [u.username for _, u in users]
    taken = {r[0] for r in await conn.fetch(target.TAKEN_USERNAMES, names)}
    codes = {r[0] for r in await conn.fetch(target.TAKEN_AFF_CODES, [u.aff_code for _, u in users])}
    token_hashes = {u.access_token: ctx.box.lookup_hash(u.access_token) for _, u in users
                    if u.access_token}  # fmt: skip
    taken_tokens = {
        r[0] for r in await conn.fetch(target.TAKEN_ACCESS_TOKENS, list(token_hashes.values()))
    }
    identities = await _taken_identities(conn, [u for _, u in users])
    inviters = await target.mapped(
        conn, ctx.name, "users", [str(u.source_inviter_id) for _, u in users if u.source_inviter_id]
    )
    fresh: list[tuple[int, convert.User]] = []
    columns: list[list[Any]] = [[] for _ in range(20)]
    for source_id, u in users:
        if u.username in taken:
            item.skip("username already exists here")
            continue
        aff_code = u.aff_code
        if not aff_code or aff_code in codes:
            aff_code = user_rules.new_aff_code()
            while aff_code in codes:
                aff_code = user_rules.new_aff_code()
            if u.aff_code:
                item.notes["invite code already used here: a new one was generated"] += 1
        codes.add(aff_code)
        access_hash = token_hashes.get(u.access_token)
        if access_hash in taken_tokens:
            item.notes["access token already used here: dropped"] += 1
            access_hash = None
        if access_hash:
            taken_tokens.add(access_hash)
        inviter = inviters.get(str(u.source_inviter_id), 0)
        u = _unique_identities(u, identities, item)
        values = (
            u.username, u.password_hash, u.display_name, u.email, u.role, u.status, u.group,
            aff_code, u.aff_count, inviter, u.setting, access_hash, u.github_id, u.oidc_id,
            u.wechat_id, u.telegram_id, u.linux_do_id, u.idc_flare_id, u.created_at,
            u.deleted_at,
        )  # fmt: skip
        append_row(columns, values)
        fresh.append((source_id, u))
    if not fresh:
        return
    inserted = {r["username"]: r["id"] for r in await conn.fetch(target.INSERT_USERS, *columns)}
    await _open_wallets(ctx, item, fresh, inserted)


async def _taken_identities(conn: target.Conn, users: list[convert.User]) -> dict[str, set[str]]:
    """Per identity column, the values some user here already holds."""
    taken: dict[str, set[str]] = {}
    for column in target.IDENTITY_COLUMNS:
        wanted = [getattr(u, column) for u in users if getattr(u, column)]
        rows = await conn.fetch(target.taken_identities(column), wanted) if wanted else []
        taken[column] = {r[0] for r in rows}
    return taken


def _unique_identities(
    u: convert.User, taken: dict[str, set[str]], item: TableReport
) -> convert.User:
    """The user without identities another user holds (here, or earlier in this import):
    one identity signs in one user. Upstream's columns were only indexed, not unique."""
    dropped: dict[str, Any] = {}
    for column in target.IDENTITY_COLUMNS:
        value = getattr(u, column)
        if not value:
            continue
        if value in taken[column]:
            dropped[column] = ""
            item.notes[f"{column} already bound to another user here: dropped"] += 1
        else:
            taken[column].add(value)
    return dataclasses.replace(u, **dropped) if dropped else u


async def _open_wallets(
    ctx: Ctx, item: TableReport, fresh: list[tuple[int, convert.User]], inserted: dict[str, int]
) -> None:
    wallets: list[list[Any]] = [[] for _ in range(7)]
    ledger: list[list[Any]] = [[] for _ in range(5)]
    pairs: list[tuple[str, int]] = []
    for source_id, u in fresh:
        user_id = inserted.get(u.username)
        if user_id is None:  # lost a race with a registration: nothing of it was written
            item.skip("username already exists here")
            continue
        pairs.append((str(source_id), user_id))
        ctx.opened[user_id] = (u.quota, u.subscription_quota, u.used_quota)
        if u.source_inviter_id and u.source_inviter_id != source_id:
            ctx.pending_inviters.append((user_id, u.source_inviter_id))
        if u.role == Role.ROOT and u.deleted_at is None and not ctx.root_user_id:
            ctx.root_user_id = user_id
        values = (
            user_id, u.quota, u.subscription_quota, u.used_quota, u.request_count, u.aff_quota,
            u.aff_history,
        )  # fmt: skip
        append_row(wallets, values)
        if u.quota or u.subscription_quota:
            entry = (
                user_id, f"import:{ctx.name}:user:{source_id}", u.quota, u.subscription_quota,
                f"opening balance imported (source user {source_id})",
            )  # fmt: skip
            append_row(ledger, entry)
    await ctx.conn.execute(target.INSERT_WALLETS, *wallets)
    if ledger[0]:
        await ctx.conn.execute(target.INSERT_OPENING, *ledger)
    await target.record(ctx.conn, ctx.name, "users", pairs)
    item.imported += len(pairs)


async def _resolve_inviters(ctx: Ctx) -> None:
    """Invitees met before their inviter: point them at the inviter once both are in."""
    if not ctx.pending_inviters:
        return
    users = await target.all_mapped(ctx.conn, ctx.name, "users")
    updates = [(uid, users[src]) for uid, src in ctx.pending_inviters if src in users]
    await ctx.conn.executemany(
        "UPDATE accounts.users SET inviter_id = $2 WHERE id = $1 AND inviter_id = 0", updates
    )
    missing = len(ctx.pending_inviters) - len(updates)
    if missing:
        ctx.report.table("users").notes["inviter was not imported"] += missing


# ---------------------------------------------------------------- API keys


async def import_tokens(ctx: Ctx) -> None:
    item = await begin(ctx, "tokens")
    users = await target.all_mapped(ctx.conn, ctx.name, "users")
    columns = ctx.columns("tokens", TOKEN_COLUMNS)
    async for rows in pages(ctx, "tokens", columns):
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        async with ctx.conn.transaction():
            await _token_batch(ctx, item, records, users)
        ctx.bars.advance("tokens", len(rows))


async def _token_batch(
    ctx: Ctx, item: TableReport, records: list[dict[str, Any]], users: dict[int, int]
) -> None:
    done = await target.mapped(ctx.conn, ctx.name, "tokens", [str(r["id"]) for r in records])
    item.already += len(done)
    columns: list[list[Any]] = [[] for _ in range(17)]
    wanted: dict[str, tuple[int, int, convert.Token]] = {}
    for record in records:
        if str(record["id"]) in done:
            continue
        try:
            tok, notes = convert.token(record)
        except convert.Unmappable as exc:
            item.skip(str(exc))
            continue
        user_id = users.get(tok.source_user_id)
        if user_id is None:
            item.skip("owner was not imported")
            continue
        key_hash = ctx.box.lookup_hash(tok.key)
        if key_hash in wanted:
            item.skip("same key twice in the source")
            continue
        item.notes.update(notes)
        wanted[key_hash] = (int(record["id"]), user_id, tok)
        values = (
            user_id, ctx.box.encrypt(tok.key), key_hash, tok.name, tok.status, tok.created_time,
            tok.accessed_time, tok.expired_time, tok.unlimited, tok.model_limits_enabled,
            "\n".join(tok.model_limits), "\n".join(tok.allow_ips), tok.group,
            tok.rate_limit_enabled, tok.rate_limit_period, tok.rate_limit_count,
            tok.rate_limit_success,
        )  # fmt: skip
        append_row(columns, values)
    if not wanted:
        return
    inserted = {
        r["key_hash"]: r["id"] for r in await ctx.conn.fetch(target.INSERT_TOKENS, *columns)
    }
    budgets: list[list[Any]] = [[] for _ in range(5)]
    pairs: list[tuple[str, int]] = []
    for key_hash, (source_id, user_id, tok) in wanted.items():
        token_id = inserted.get(key_hash)
        if token_id is None:
            item.skip("the same key already exists here")
            continue
        pairs.append((str(source_id), token_id))
        append_row(budgets, (token_id, user_id, tok.remain_quota, tok.used_quota, tok.unlimited))
    await ctx.conn.execute(target.INSERT_BUDGETS, *budgets)
    await target.record(ctx.conn, ctx.name, "tokens", pairs)
    item.imported += len(pairs)


# ---------------------------------------------------------------- channels and abilities


async def import_channels(ctx: Ctx) -> None:
    item = await begin(ctx, "channels")
    columns = ctx.columns("channels", CHANNEL_COLUMNS)
    abilities = await _source_abilities(ctx)
    ability_report = ctx.report.table("abilities")
    ability_report.source = sum(len(v) for v in abilities.values())
    changed = False
    async for rows in pages(ctx, "channels", columns):
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        async with ctx.conn.transaction():
            done = await target.mapped(
                ctx.conn, ctx.name, "channels", [str(r["id"]) for r in records]
            )
            item.already += len(done)
            for record in records:
                if str(record["id"]) in done:
                    ability_report.already += len(abilities.get(int(record["id"]), []))
                    continue
                await _channel(ctx, item, record, abilities.get(int(record["id"])))
                changed = True
            if changed:
                await ctx.conn.fetchval(target.BUMP_ROUTING)
        ctx.bars.advance("channels", len(rows))


async def _source_abilities(ctx: Ctx) -> dict[int, list[dict[str, Any]]]:
    columns = ctx.columns("abilities", ABILITY_COLUMNS)
    if "channel_id" not in columns:
        return {}
    found: dict[int, list[dict[str, Any]]] = {}
    for row in await ctx.source.fetch(ctx.source.dialect.select_all("abilities", columns)):
        record = dict(zip(columns, row, strict=True))
        found.setdefault(convert.integer(record["channel_id"]), []).append(record)
    return found


async def _channel(
    ctx: Ctx, item: TableReport, record: dict[str, Any], abilities: list[dict[str, Any]] | None
) -> None:
    value, notes = convert.channel(record, now=ctx.now)
    item.notes.update(notes)
    channel_id: int = await ctx.conn.fetchval(
        target.INSERT_CHANNEL, value.type, value.name, value.base_url, value.models, value.groups,
        value.priority, value.weight, value.status, value.model_mapping,
        value.status_code_mapping, value.model_prefix, value.system_prompt, value.tag,
        value.test_model, value.openai_organization, value.other, value.setting,
        value.param_override, value.auto_ban, value.created_time, value.test_time,
        value.response_time, value.balance, value.balance_updated_time, value.status_reason,
        value.status_time,
    )  # fmt: skip
    await ctx.conn.execute(
        target.INSERT_CHANNEL_KEYS,
        channel_id,
        [ctx.box.encrypt(k) for k in value.keys],
        [ctx.box.lookup_hash(k) for k in value.keys],
    )
    routable = value.status in (1, 3)
    rows = abilities
    if rows is None:  # no routing index in the source: groups x models, as a channel save does
        rows = [{"group": g, "model": m, "enabled": routable} for g in value.groups
                for m in value.models]  # fmt: skip
    columns: list[list[Any]] = [[] for _ in range(7)]
    for ability in rows:
        values = (
            convert.text(ability.get("group")), convert.text(ability.get("model")), channel_id,
            convert.integer(ability.get("priority"), value.priority),
            convert.integer(ability.get("weight"), value.weight),
            routable and convert.flag(ability.get("enabled", True)),
            convert.text(ability.get("tag")) or value.tag,
        )  # fmt: skip
        append_row(columns, values)
    await ctx.conn.execute(target.INSERT_ABILITIES, *columns)
    ctx.report.table("abilities").imported += len(rows)
    await target.record(ctx.conn, ctx.name, "channels", [(str(record["id"]), channel_id)])
    item.imported += 1


# ---------------------------------------------------------------- redemption codes


async def import_redemptions(ctx: Ctx) -> None:
    if "redemptions" not in ctx.tables:
        return
    item = await begin(ctx, "redemptions")
    users = await target.all_mapped(ctx.conn, ctx.name, "users")
    columns = ctx.columns("redemptions", REDEMPTION_COLUMNS)
    async for rows in pages(ctx, "redemptions", columns):
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        async with ctx.conn.transaction():
            await _redemption_batch(ctx, item, records, users)
        ctx.bars.advance("redemptions", len(rows))
    if "redemption_logs" in ctx.tables:
        await _redemption_logs(ctx, users)


async def _redemption_batch(
    ctx: Ctx, item: TableReport, records: list[dict[str, Any]], users: dict[int, int]
) -> None:
    done = await target.mapped(ctx.conn, ctx.name, "redemptions", [str(r["id"]) for r in records])
    item.already += len(done)
    columns: list[list[Any]] = [[] for _ in range(13)]
    wanted: dict[str, int] = {}
    for record in records:
        if str(record["id"]) in done:
            continue
        try:
            code, notes = convert.redemption(record)
        except convert.Unmappable as exc:
            item.skip(str(exc))
            continue
        if code.key in wanted:
            item.skip("same code twice in the source")
            continue
        item.notes.update(notes)
        wanted[code.key] = int(record["id"])
        values = (
            users.get(code.source_user_id, 0), code.key, code.status, code.name, code.quota,
            code.created_time, code.redeemed_time, users.get(code.source_used_user_id, 0),
            code.valid_from, code.valid_until, code.is_gift, code.max_uses, code.used_count,
        )  # fmt: skip
        append_row(columns, values)
    if not wanted:
        return
    inserted = {
        r["key"]: r["id"] for r in await ctx.conn.fetch(target.INSERT_REDEMPTIONS, *columns)
    }
    pairs = [(str(src), inserted[key]) for key, src in wanted.items() if key in inserted]
    item.skip("the same code already exists here", len(wanted) - len(pairs))
    await target.record(ctx.conn, ctx.name, "redemptions", pairs)
    item.imported += len(pairs)


async def _redemption_logs(ctx: Ctx, users: dict[int, int]) -> None:
    item = await begin(ctx, "redemption_logs")
    codes = await target.all_mapped(ctx.conn, ctx.name, "redemptions")
    columns = ctx.columns("redemption_logs", ("id", "redemption_id", "user_id", "used_time"))
    async for rows in pages(ctx, "redemption_logs", columns):
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        async with ctx.conn.transaction():
            done = await target.mapped(
                ctx.conn, ctx.name, "redemption_logs", [str(r["id"]) for r in records]
            )
            item.already += len(done)
            todo = [r for r in records if str(r["id"]) not in done]
            keep = [r for r in todo if convert.integer(r.get("redemption_id")) in codes
                    and convert.integer(r.get("user_id")) in users]  # fmt: skip
            item.skip("code or user was not imported", len(todo) - len(keep))
            if keep:
                ids = await ctx.conn.fetch(
                    target.INSERT_REDEMPTION_LOGS,
                    [codes[convert.integer(r["redemption_id"])] for r in keep],
                    [users[convert.integer(r["user_id"])] for r in keep],
                    [convert.integer(r.get("used_time")) or ctx.now for r in keep],
                )
                item.imported += len(ids)
                await target.record(
                    ctx.conn, ctx.name, "redemption_logs", [(str(r["id"]), 0) for r in keep]
                )
        ctx.bars.advance("redemption_logs", len(rows))


# ---------------------------------------------------------------- skipped tables and checks


async def count_not_imported(ctx: Ctx) -> None:
    for table, reason in NOT_IMPORTED.items():
        if table in ctx.tables:
            item = ctx.report.table(table)
            item.source = await ctx.count(table)
            if item.source:
                item.skip(reason, item.source)


async def run_checks(ctx: Ctx) -> None:
    """Opening balances equal the source's (and, for wallets this run opened, the balance and
    used quota too: later runs may meet wallets already in use), every key is in, and the
    ledger matches every wallet."""
    users = await target.all_mapped(ctx.conn, ctx.name, "users")
    expected_quota = expected_sub = 0
    columns = ctx.columns("users", ("id", "quota", "subscription_quota"))
    async for rows in pages(ctx, "users", columns, limit=10_000):
        for row in rows:
            record = dict(zip(columns, row, strict=True))
            if convert.integer(record["id"]) in users:
                expected_quota += max(convert.integer(record.get("quota")), 0)
                expected_sub += max(convert.integer(record.get("subscription_quota")), 0)
    got = await ctx.conn.fetchrow(target.CHECK_OPENING, ctx.name)
    assert got is not None
    quota, subscription = int(got["quota"]), int(got["subscription"])  # sums are numeric
    same = (quota, subscription) == (expected_quota, expected_sub)
    ctx.report.checks.append(Check(
        "opening balances match the source", same,
        f"{len(users)} users, balance {quota} (source {expected_quota}),"
        f" subscription {subscription} (source {expected_sub})",
    ))  # fmt: skip
    wallets = await ctx.conn.fetch(target.WALLETS, list(ctx.opened))
    differ = [w["user_id"] for w in wallets if ctx.opened[w["user_id"]] != tuple(w)[1:]]
    ctx.report.checks.append(Check(
        "new wallets match the source", not differ and len(wallets) == len(ctx.opened),
        f"{len(wallets)} wallets opened by this run, {len(differ)} differ",
    ))  # fmt: skip
    bad = await ctx.conn.fetchval(target.CHECK_LEDGER, ctx.name)
    ctx.report.checks.append(
        Check("ledger consistent", bad == 0, f"{bad} wallets differ from their ledger")
    )
    keys = await ctx.conn.fetchval(target.CHECK_KEYS, ctx.name)
    tokens = ctx.report.table("tokens")
    expected = tokens.imported + tokens.already
    ctx.report.checks.append(
        Check("keys count", keys == expected, f"{keys} keys usable here, {expected} mapped")
    )
