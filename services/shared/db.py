"""asyncpg pool and the migration runner (numbered SQL files per service schema)."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Self, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.shared.metrics import watch_pool

logger = logging.getLogger(__name__)

# What repository functions take: a plain connection or one acquired from the pool.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class Row:
    """The base of a repository's typed record (a frozen dataclass): built from an asyncpg row
    whose columns are the record's fields, so a use case reads attributes mypy checks instead
    of `row["column"]`."""

    __slots__ = ()

    @classmethod
    def of(cls, row: asyncpg.Record) -> Self:
        return cls(**row)

    @classmethod
    def maybe(cls, row: asyncpg.Record | None) -> Self | None:
        return None if row is None else cls(**row)


class Where:
    """A WHERE clause built from optional filters, its values passed as $n parameters (never
    spelled into the SQL): `add("user_id = {}", 7)` adds `user_id = $1`."""

    __slots__ = ("args", "clauses")

    def __init__(self, clauses: list[str] | None = None, args: list[object] | None = None) -> None:
        self.clauses = clauses or []
        self.args = args or []

    def add(self, clause: str, value: object) -> None:
        self.args.append(value)
        self.clauses.append(clause.format(f"${len(self.args)}"))

    def sql(self) -> str:
        """` WHERE a AND b`, or nothing without a clause."""
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


async def create_pool(
    dsn: str, *, schema: str, min_size: int = 2, max_size: int = 20
) -> asyncpg.Pool:
    """One pool per process, its search_path set to the service's own schema. Statements time
    out so a stuck query never hangs a request."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        reset=_keep_session,
        server_settings={
            "application_name": f"veloera-{schema}",
            "statement_timeout": "30000",
            "search_path": schema,
        },
    )
    assert pool is not None
    watch_pool(pool, schema)
    return pool


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Pool release without the default RESET ALL round trip: our services keep no session
    state (no LISTEN, advisory locks or SET outside transactions), and asyncpg still rolls back
    any open transaction before this runs."""


def _lock_id(schema: str) -> int:
    digest = hashlib.sha256(f"veloera-migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migration_files(directory: Path) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every NNNN_name.sql file, in order; names must be unique."""
    found: list[tuple[int, str, str]] = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append((int(match.group(1)), path.name, path.read_text()))
    versions = [version for version, _, _ in found]
    if len(versions) != len(set(versions)):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return found


async def migrate(conn: asyncpg.Connection, *, schema: str, directory: Path) -> list[str]:
    """Apply the pending migrations of `schema` under an advisory lock, each in a transaction.

    Returns the names applied. Safe to run from several processes at once.
    """
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _lock_id(schema))
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        done = {row["version"] for row in rows}
        for version, name, sql in migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                    version,
                    name,
                )
            logger.info("applied migration", extra={"schema": schema, "migration": name})
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _lock_id(schema))
    return applied_now
