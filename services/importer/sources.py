"""Readers of the upstream database: SQLite, PostgreSQL and (optional extra) MySQL.

Every reader answers the same three questions with the same dialect-neutral SQL (only the
identifier quote differs): which tables and columns exist, how many rows a table has, and the
next page of rows by id (keyset pagination, so a page costs the same at row 1 and row 10 million).
Page bounds are integers the importer computes, inlined rather than bound, so the statements are
the same text for every driver's parameter style.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

import asyncpg

Row = Sequence[Any]
SOURCE_TIMEOUT = 300.0  # one page or count; a source that stops answering fails the import

SQLITE_COLUMNS = (
    "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p"
    " WHERE m.type = 'table'"
)
PG_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns"
    " WHERE table_schema = current_schema()"
)
MYSQL_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = DATABASE()"
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between source databases in the statements the importer sends."""

    name: str
    quote_char: str
    columns_sql: str

    def quote(self, identifier: str) -> str:
        q = self.quote_char
        return q + identifier.replace(q, q + q) + q

    def select_page(
        self,
        table: str,
        columns: Sequence[str],
        *,
        key: str,
        after: int,
        limit: int,
        present: set[str] | None = None,
    ) -> str:
        """The next page after `after`; columns outside `present` (when given) read as NULL,
        so every page has the same shape whatever the source's schema generation."""
        cols = ", ".join(
            self.quote(c) if present is None or c in present else f"NULL AS {self.quote(c)}"
            for c in columns
        )
        k = self.quote(key)
        return (
            f"SELECT {cols} FROM {self.quote(table)} WHERE {k} > {int(after)}"
            f" ORDER BY {k} LIMIT {int(limit)}"
        )

    def select_all(self, table: str, columns: Sequence[str]) -> str:
        return f"SELECT {', '.join(self.quote(c) for c in columns)} FROM {self.quote(table)}"

    def count(self, table: str) -> str:
        return f"SELECT COUNT(*) FROM {self.quote(table)}"

    def max_min(self, table: str, column: str) -> str:
        c = self.quote(column)
        return f"SELECT MIN({c}), MAX({c}) FROM {self.quote(table)}"


SQLITE = Dialect("sqlite", '"', SQLITE_COLUMNS)
POSTGRES = Dialect("postgresql", '"', PG_COLUMNS)
MYSQL = Dialect("mysql", "`", MYSQL_COLUMNS)


class Source(Protocol):
    dialect: Dialect
    label: str

    async def fetch(self, sql: str) -> list[Row]: ...

    async def close(self) -> None: ...


async def schema(source: Source) -> dict[str, set[str]]:
    """Table name -> its column names (lower case, as GORM creates them)."""
    found: dict[str, set[str]] = {}
    for table, column in await source.fetch(source.dialect.columns_sql):
        found.setdefault(str(table).lower(), set()).add(str(column).lower())
    return found


class DbApiSource:
    """A synchronous DB-API connection (sqlite3, PyMySQL) used from a worker thread; one
    statement at a time, as DB-API connections are not safe to share between threads."""

    def __init__(self, conn: Any, dialect: Dialect, label: str) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.dialect = dialect
        self.label = label

    def _run(self, sql: str) -> list[Row]:
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    async def fetch(self, sql: str) -> list[Row]:
        async with self._lock:
            return await asyncio.wait_for(asyncio.to_thread(self._run, sql), SOURCE_TIMEOUT)

    async def close(self) -> None:
        await asyncio.to_thread(self._conn.close)


class PostgresSource:
    def __init__(self, conn: asyncpg.Connection[asyncpg.Record], label: str) -> None:
        self._conn = conn
        self.dialect = POSTGRES
        self.label = label

    async def fetch(self, sql: str) -> list[Row]:
        rows = await self._conn.fetch(sql, timeout=SOURCE_TIMEOUT)
        return cast(list[Row], rows)  # Records index like tuples

    async def close(self) -> None:
        await self._conn.close()


def describe(target: str) -> str:
    """The source for messages, without a password."""
    parts = urlsplit(target)
    if parts.scheme and parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return target


async def open_source(target: str) -> Source:
    """A reader for a SQLite file path (or sqlite:///path), a postgres:// or mysql:// DSN."""
    scheme = urlsplit(target).scheme.lower()
    label = describe(target)
    if scheme in ("postgres", "postgresql"):
        conn = await asyncpg.connect(target, timeout=30)
        return PostgresSource(conn, label)
    if scheme in ("mysql", "mysql+pymysql"):
        return await asyncio.to_thread(_open_mysql, target, label)
    path = Path(target.removeprefix("sqlite:///") if scheme == "sqlite" else target)
    sqlite = await asyncio.to_thread(_open_sqlite, path)
    return DbApiSource(sqlite, SQLITE, label)


def _open_sqlite(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite database at {path}")
    # Read-only: the import never writes to the database it moves out of.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def _open_mysql(target: str, label: str) -> DbApiSource:
    try:
        import pymysql
    except ImportError as exc:  # the optional extra is not installed
        raise RuntimeError(
            "reading MySQL needs the optional extra: pip install 'veloera-py[import-mysql]'"
        ) from exc
    parts = urlsplit(target)
    conn = pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/"),
        charset="utf8mb4",
        connect_timeout=30,
        read_timeout=int(SOURCE_TIMEOUT),
    )
    return DbApiSource(conn, MYSQL, label)
