"""Signup rewards (one row per user) and the inviter's transferable aff_quota on the wallet."""

from __future__ import annotations

from services.shared.db import Connection

CLAIM_SIGNUP = """
INSERT INTO signup_rewards (user_id, inviter_id, new_user_quota, invitee_quota, inviter_quota)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO NOTHING RETURNING user_id
"""
CREDIT_AFF = """
UPDATE wallets SET aff_quota = aff_quota + $2, aff_history = aff_history + $2, updated_at = now()
WHERE user_id = $1
"""
LOCK_AFF = "SELECT aff_quota FROM wallets WHERE user_id = $1 FOR UPDATE"
DEBIT_AFF = """
UPDATE wallets SET aff_quota = aff_quota - $2, updated_at = now()
WHERE user_id = $1 AND aff_quota >= $2
"""


async def claim_signup(
    conn: Connection,
    *,
    user_id: int,
    inviter_id: int,
    new_user_quota: int,
    invitee_quota: int,
    inviter_quota: int,
) -> bool:
    """False when the user's signup rewards were already granted."""
    claimed = await conn.fetchval(
        CLAIM_SIGNUP, user_id, inviter_id, new_user_quota, invitee_quota, inviter_quota
    )
    return claimed is not None


async def credit_aff(conn: Connection, *, user_id: int, quota: int) -> None:
    await conn.execute(CREDIT_AFF, user_id, quota)


async def lock_aff(conn: Connection, *, user_id: int) -> int | None:
    """The wallet's aff_quota, locked; None without a wallet."""
    available: int | None = await conn.fetchval(LOCK_AFF, user_id)
    return available


async def debit_aff(conn: Connection, *, user_id: int, quota: int) -> None:
    await conn.execute(DEBIT_AFF, user_id, quota)
