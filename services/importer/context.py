"""What every table's import shares: the run's context, paging through the source, and the
small helpers that turn source values into ours fast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.importer import convert, target
from services.importer.report import Report, TableReport
from services.importer.sources import Row, Source
from services.shared.crypto import SecretBox


class Reporter(Protocol):
    def begin(self, table: str, total: int) -> None: ...

    def advance(self, table: str, count: int) -> None: ...


class Quiet:
    def begin(self, table: str, total: int) -> None:
        pass

    def advance(self, table: str, count: int) -> None:
        pass


@dataclass
class Ctx:
    database_url: str
    source: Source
    tables: dict[str, set[str]]
    conn: target.Conn
    box: SecretBox
    name: str
    dry_run: bool
    batch: int
    log_batch: int
    log_writers: int
    report: Report
    bars: Reporter
    now: int = field(default_factory=lambda: int(time.time()))
    pending_inviters: list[tuple[int, int]] = field(default_factory=list)
    # Wallets this run opened: user id -> (quota, subscription, used quota) from the source.
    opened: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    root_user_id: int = 0
    option_keys: list[str] = field(default_factory=list)
    pricing_keys: list[str] = field(default_factory=list)

    def columns(self, table: str, wanted: Sequence[str]) -> list[str]:
        present = self.tables.get(table, set())
        return [c for c in wanted if c in present]

    async def count(self, table: str) -> int:
        rows = await self.source.fetch(self.source.dialect.count(table))
        return int(rows[0][0])


async def pages(
    ctx: Ctx,
    table: str,
    columns: Sequence[str],
    *,
    after: int = 0,
    limit: int = 0,
    present: set[str] | None = None,
) -> AsyncIterator[list[Row]]:
    """Rows in source id order, one page at a time; the next page is read while the caller
    writes the current one."""
    dialect, size = ctx.source.dialect, limit or ctx.batch

    async def read(start: int) -> list[Row]:
        sql = dialect.select_page(
            table, columns, key="id", after=start, limit=size, present=present
        )
        return await ctx.source.fetch(sql)

    pending = asyncio.ensure_future(read(after))
    try:
        while True:
            rows = await pending
            if not rows:
                return
            pending = asyncio.ensure_future(read(int(rows[-1][0])))
            yield rows
    finally:
        if not pending.done():
            pending.cancel()


async def begin(ctx: Ctx, table: str) -> TableReport:
    item = ctx.report.table(table)
    item.source = await ctx.count(table) if table in ctx.tables else 0
    ctx.bars.begin(table, item.source)
    return item


def as_int(value: Any) -> int:
    return value if type(value) is int else convert.integer(value)


def as_str(value: Any) -> str:
    return value if type(value) is str else convert.text(value)


def append_row(columns: list[list[Any]], values: Sequence[Any]) -> None:
    """Add one row to column-wise lists (the shape `unnest` inserts take)."""
    for column, value in zip(columns, values, strict=True):
        column.append(value)


async def count_after(ctx: Ctx, table: str, after: int) -> int:
    dialect = ctx.source.dialect
    sql = f"{dialect.count(table)} WHERE {dialect.quote('id')} > {int(after)}"
    return int((await ctx.source.fetch(sql))[0][0])
