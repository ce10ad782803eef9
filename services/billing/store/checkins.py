"""Check-in days: one row per (user, day), the primary key that makes the reward once a day."""

from __future__ import annotations

from datetime import date

from services.shared.db import Connection

CLAIM_DAY = """
INSERT INTO check_ins (user_id, day, quota) VALUES ($1, $2, $3)
ON CONFLICT (user_id, day) DO NOTHING RETURNING day
"""
HAS_DAY = "SELECT 1 FROM check_ins WHERE user_id = $1 AND day = $2"


async def claim_day(conn: Connection, *, user_id: int, day: date, quota: int) -> bool:
    """False when the user already has this day."""
    return await conn.fetchval(CLAIM_DAY, user_id, day, quota) is not None


async def has_day(conn: Connection, *, user_id: int, day: date) -> bool:
    return await conn.fetchval(HAS_DAY, user_id, day) is not None
