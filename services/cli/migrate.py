"""`veloera migrate`: apply every service schema's numbered migrations under advisory locks."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from services.shared.db import migrate

# Schemas in the order they are migrated; each service owns one and its folder of SQL files.
SCHEMAS = ("accounts", "billing", "tasks")
_SERVICES_DIR = Path(__file__).resolve().parent.parent


async def run_migrations(dsn: str) -> dict[str, list[str]]:
    """Apply pending migrations of every schema; returns what was applied per schema."""
    conn = await asyncpg.connect(dsn)
    try:
        applied: dict[str, list[str]] = {}
        for schema in SCHEMAS:
            directory = _SERVICES_DIR / schema / "migrations"
            if directory.is_dir():
                applied[schema] = await migrate(conn, schema=schema, directory=directory)
        return applied
    finally:
        await conn.close()
