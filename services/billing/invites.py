"""Invite rewards (reference §7.3): signup grants, the inviter's transferable aff_quota."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.billing import adjust
from services.billing.store import logs, wallets
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition, InvalidArgument

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


@dataclass(frozen=True, slots=True)
class SignupRewards:
    new_user_quota: int
    invitee_quota: int
    inviter_quota: int
    already_granted: bool


def _grant(user_id: int, key: str, quota: int, kind: str, content: str) -> adjust.Adjustment:
    return adjust.Adjustment(
        idempotency_key=key,
        user_id=user_id,
        delta=quota,
        set_to=None,
        reason=content,
        actor_id=0,
        kind=kind,
        subscription=False,
        log_content=content,
    )


async def grant_signup(
    conn: Connection,
    *,
    user_id: int,
    inviter_id: int,
    new_user_quota: int,
    invitee_quota: int,
    inviter_quota: int,
) -> SignupRewards:
    """Grant the signup rewards once per user (the caller owns the transaction)."""
    if user_id <= 0 or inviter_id < 0 or inviter_id == user_id:
        raise InvalidArgument("user_id must be positive and differ from inviter_id")
    if inviter_id == 0:
        invitee_quota = inviter_quota = 0
    claimed = await conn.fetchval(
        CLAIM_SIGNUP, user_id, inviter_id, new_user_quota, invitee_quota, inviter_quota
    )
    if claimed is None:
        return SignupRewards(0, 0, 0, True)
    if new_user_quota > 0:
        await adjust.adjust(
            conn,
            change=_grant(
                user_id, f"new-user:{user_id}", new_user_quota, "grant", "新用户注册赠送额度"
            ),
        )
    if invitee_quota > 0:
        await adjust.adjust(
            conn,
            change=_grant(
                user_id, f"invitee:{user_id}", invitee_quota, "invite", "使用邀请码赠送额度"
            ),
        )
    if inviter_quota > 0:
        await wallets.ensure_wallet(conn, user_id=inviter_id)
        await conn.execute(CREDIT_AFF, inviter_id, inviter_quota)
        await logs.insert(
            conn,
            row=logs.LogRow(
                user_id=inviter_id,
                type=logs.TYPE_SYSTEM,
                content=f"邀请用户赠送额度 {inviter_quota}（待划转）",
                quota=inviter_quota,
                other={"kind": "invite", "invitee_id": user_id},
            ),
        )
    return SignupRewards(new_user_quota, invitee_quota, inviter_quota, False)


async def transfer(conn: Connection, *, user_id: int, quota: int, minimum: int) -> None:
    """Move `quota` from aff_quota into quota (at least `minimum`, one QuotaPerUnit)."""
    if quota < minimum:
        raise InvalidArgument(f"the transfer must be at least {minimum} units")
    await wallets.ensure_wallet(conn, user_id=user_id)
    available = await conn.fetchval(LOCK_AFF, user_id)
    if available is None or available < quota:
        raise FailedPrecondition(
            "your invite reward balance is not enough", code="insufficient_aff_quota"
        )
    await conn.execute(DEBIT_AFF, user_id, quota)
    await adjust.adjust(
        conn,
        change=_grant(
            user_id, f"aff-transfer:{uuid.uuid4()}", quota, "invite", f"邀请奖励划转 {quota}"
        ),
    )
