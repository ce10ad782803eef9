"""Stored pricing options (key -> raw text as the admin entered it)."""

from __future__ import annotations

import asyncpg

from services.shared.db import Connection

SELECT_OPTIONS = "SELECT key, value FROM pricing_options"
RESEAL_OPTION = "UPDATE pricing_options SET value = $2 WHERE key = $1"
UPSERT_OPTION = """
INSERT INTO pricing_options (key, value, updated_by) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by,
    updated_at = now()
"""


async def load(conn: Connection | asyncpg.Pool) -> dict[str, str]:
    return {row["key"]: row["value"] for row in await conn.fetch(SELECT_OPTIONS)}


async def save(conn: Connection | asyncpg.Pool, *, key: str, raw: str, actor_id: int) -> None:
    await conn.execute(UPSERT_OPTION, key, raw, actor_id)


async def reseal(conn: Connection | asyncpg.Pool, *, key: str, stored: str) -> None:
    """Replace a stored value in place (a secret found in plaintext, now sealed)."""
    await conn.execute(RESEAL_OPTION, key, stored)
