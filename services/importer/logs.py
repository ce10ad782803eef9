"""Logs and usage rollups: the big append-only tables, copied in pages past a watermark."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.importer import convert, target
from services.importer.context import (
    Ctx,
    append_row,
    as_int,
    as_str,
    begin,
    count_after,
    pages,
)
from services.importer.report import TableReport
from services.importer.sources import Row

LOG_SOURCE_COLUMNS = (
    "id", "user_id", "created_at", "type", "content", "username", "token_name", "model_name",
    "quota", "prompt_tokens", "completion_tokens", "use_time", "is_stream", "channel_id",
    "token_id", "group", "other", "ip", "client_ip",
)  # fmt: skip
QUOTA_DATA_COLUMNS = (
    "id", "user_id", "username", "model_name", "created_at", "token_used", "count", "quota",
)  # fmt: skip


async def import_logs(ctx: Ctx) -> None:
    if "logs" not in ctx.tables:
        return
    item = await begin(ctx, "logs")
    after = await target.progress(ctx.conn, ctx.name, "logs")
    done = [(r["first_id"], r["last_id"]) for r in await ctx.conn.fetch(target.LOG_PAGES, ctx.name)]
    remaining = await count_after(ctx, "logs", after) - await _count_within(ctx, done)
    item.already = item.source - remaining
    ctx.bars.advance("logs", item.already)
    if ctx.dry_run:
        item.imported = remaining
        ctx.bars.advance("logs", remaining)
        return
    await _ensure_partitions(ctx, after)
    rewrite = await LogRewriter.load(ctx)
    last_ids = [after, *(last for _, last in done)]
    await _copy_logs(ctx, item, rewrite, after=after, done=done, last_ids=last_ids)
    async with ctx.conn.transaction():  # every page is in: one watermark instead of the pages
        await ctx.conn.execute(target.SET_PROGRESS, ctx.name, "logs", max(last_ids))
        await ctx.conn.execute(target.FORGET_LOG_PAGES, ctx.name)
    if rewrite.without_user:
        item.notes["user was not imported: kept without a user"] += rewrite.without_user


async def _copy_logs(
    ctx: Ctx,
    item: TableReport,
    rewrite: LogRewriter,
    *,
    after: int,
    done: list[tuple[int, int]],
    last_ids: list[int],
) -> None:
    """Pages are read and converted (in a thread) by one task and copied by `log_writers` tasks,
    each on its own connection, so PostgreSQL's index maintenance runs on every core. Pages
    commit out of order, each with its id range (import.log_pages): a resumed run skips
    exactly the rows already copied."""
    present = ctx.tables["logs"]
    queue: asyncio.Queue[tuple[int, int, list[tuple[Any, ...]]] | None] = asyncio.Queue(
        ctx.log_writers + 1
    )

    async def produce() -> None:
        async for page in pages(
            ctx, "logs", LOG_SOURCE_COLUMNS, after=after, limit=ctx.log_batch, present=present
        ):
            rows = [r for r in page if not _within(int(r[0]), done)] if done else page
            if rows:
                records = await asyncio.to_thread(rewrite.records, rows)
                await queue.put((int(rows[0][0]), int(rows[-1][0]), records))
        for _ in range(ctx.log_writers):
            await queue.put(None)

    async def write(conn: target.Conn) -> None:
        while (page := await queue.get()) is not None:
            first_id, last_id, records = page
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "logs", schema_name="billing", records=records,
                    columns=target.LOG_COLUMNS, timeout=300,
                )  # fmt: skip
                await conn.execute(target.ADD_LOG_PAGE, ctx.name, first_id, last_id)
            last_ids.append(last_id)
            item.imported += len(records)
            ctx.bars.advance("logs", len(records))

    extra = [await target.connect(ctx.database_url) for _ in range(ctx.log_writers - 1)]
    tasks = [asyncio.create_task(produce())]
    tasks += [asyncio.create_task(write(conn)) for conn in (ctx.conn, *extra)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in extra:
            await conn.close()


def _within(source_id: int, ranges: list[tuple[int, int]]) -> bool:
    return any(first <= source_id <= last for first, last in ranges)


async def _count_within(ctx: Ctx, ranges: list[tuple[int, int]]) -> int:
    dialect, key = ctx.source.dialect, ctx.source.dialect.quote("id")
    total = 0
    for first, last in ranges:
        sql = f"{dialect.count('logs')} WHERE {key} >= {int(first)} AND {key} <= {int(last)}"
        total += int((await ctx.source.fetch(sql))[0][0])
    return total


async def _ensure_partitions(ctx: Ctx, after: int) -> None:
    """Monthly partitions for the months the source logs cover (else they land in the default
    partition, where time-window queries cannot prune them)."""
    dialect = ctx.source.dialect
    sql = f"{dialect.max_min('logs', 'created_at')} WHERE {dialect.quote('id')} > {int(after)}"
    low, high = (await ctx.source.fetch(sql))[0]
    if low is None:
        return
    month = datetime.fromtimestamp(int(low), UTC).replace(day=1, hour=0, minute=0, second=0)
    end = datetime.fromtimestamp(int(high), UTC)
    while month <= end:
        await ctx.conn.execute(target.ENSURE_PARTITION, month.timestamp())
        month = month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


@dataclass
class LogRewriter:
    """Source log rows (LOG_SOURCE_COLUMNS, absent ones NULL) -> COPY records: ids rewritten to
    ours, times to timestamps. The hot loop of a big import: one tuple unpack per row and type
    checks instead of conversions for the values drivers already return typed."""

    users: dict[int, int]
    tokens: dict[int, int]
    channels: dict[int, int]
    channel_names: dict[int, str]
    without_user: int = 0

    @classmethod
    async def load(cls, ctx: Ctx) -> LogRewriter:
        names: dict[int, str] = {}
        if {"id", "name"} <= ctx.tables.get("channels", set()):
            for cid, name in await ctx.source.fetch(
                ctx.source.dialect.select_all("channels", ["id", "name"])
            ):
                names[int(cid)] = convert.text(name)
        return cls(
            users=await target.all_mapped(ctx.conn, ctx.name, "users"),
            tokens=await target.all_mapped(ctx.conn, ctx.name, "tokens"),
            channels=await target.all_mapped(ctx.conn, ctx.name, "channels"),
            channel_names=names,
        )

    def records(self, rows: list[Row]) -> list[tuple[Any, ...]]:
        users, tokens, channels, names = self.users, self.tokens, self.channels, self.channel_names
        out: list[tuple[Any, ...]] = []
        append, fromts, other = out.append, datetime.fromtimestamp, convert.log_other
        for (
            _id, user, created, kind, content, username, token_name, model, quota, prompt,
            completion, use_time, stream, channel, token, group, extra, ip, client_ip,
        ) in rows:  # fmt: skip
            user = as_int(user)
            user_id = users.get(user, 0)
            if not user_id and user:
                self.without_user += 1
            channel = as_int(channel)
            use_time = as_int(use_time)
            append((
                user_id, fromts(as_int(created), UTC), as_int(kind), as_str(content),
                as_str(username), as_str(token_name), as_str(model), as_int(quota), as_int(prompt),
                as_int(completion), use_time, bool(stream), channels.get(channel, 0),
                names.get(channel, ""), tokens.get(as_int(token), 0), as_str(group), other(extra),
                as_str(client_ip if client_ip is not None else ip), use_time * 1000,
            ))  # fmt: skip
        return out


async def import_quota_data(ctx: Ctx) -> None:
    """The hourly usage rollups behind the console's dashboard; rows of one user, model and
    hour are added together (the source may hold several), past a watermark like logs."""
    if "quota_data" not in ctx.tables:
        return
    item = await begin(ctx, "quota_data")
    after = await target.progress(ctx.conn, ctx.name, "quota_data")
    remaining = await count_after(ctx, "quota_data", after)
    item.already = item.source - remaining
    ctx.bars.advance("quota_data", item.already)
    users = await target.all_mapped(ctx.conn, ctx.name, "users")
    present = ctx.tables["quota_data"]
    async for rows in pages(
        ctx, "quota_data", QUOTA_DATA_COLUMNS, after=after, limit=ctx.log_batch, present=present
    ):
        columns: list[list[Any]] = [[] for _ in range(7)]
        for _id, user, username, model, created, tokens, count, quota in rows:
            user_id = users.get(as_int(user))
            if user_id is None:
                item.skip("user was not imported")
                continue
            hour = as_int(created) // 3600 * 3600
            append_row(columns, (user_id, as_str(username), as_str(model), hour, as_int(tokens),
                              as_int(count), as_int(quota)))  # fmt: skip
        async with ctx.conn.transaction():
            if columns[0]:
                await ctx.conn.execute(target.ADD_QUOTA_DATA, *columns)
            await ctx.conn.execute(target.SET_PROGRESS, ctx.name, "quota_data", int(rows[-1][0]))
        item.imported += len(columns[0])
        ctx.bars.advance("quota_data", len(rows))
