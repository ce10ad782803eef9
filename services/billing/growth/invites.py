"""Invite rewards: signup grants, the inviter's transferable aff_quota."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.billing.context import Billing
from services.billing.metering import adjust, balances
from services.billing.store import invites as invite_rows
from services.billing.store import logs, wallets
from services.billing.store.wallets import WalletRow
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition, InvalidArgument


@dataclass(frozen=True, slots=True)
class SignupRewards:
    new_user_quota: int
    invitee_quota: int
    inviter_quota: int
    already_granted: bool


def _grant(user_id: int, key: str, quota: int, kind: str, content: str) -> adjust.Adjustment:
    return adjust.Adjustment.credit(
        key=key, user_id=user_id, quota=quota, kind=kind, reason=content, log_content=content
    )


async def grant_signup(billing: Billing, *, user_id: int, inviter_id: int) -> SignupRewards:
    """Grant the signup rewards once per user, at the amounts the options set now."""
    table = billing.prices.table
    async with billing.pool.acquire() as conn, conn.transaction():
        return await _grant_signup(
            conn,
            user_id=user_id,
            inviter_id=inviter_id,
            new_user_quota=table.number("QuotaForNewUser"),
            invitee_quota=table.number("QuotaForInvitee"),
            inviter_quota=table.number("QuotaForInviter"),
        )


async def _grant_signup(
    conn: Connection,
    *,
    user_id: int,
    inviter_id: int,
    new_user_quota: int,
    invitee_quota: int,
    inviter_quota: int,
) -> SignupRewards:
    if user_id <= 0 or inviter_id < 0 or inviter_id == user_id:
        raise InvalidArgument("user_id must be positive and differ from inviter_id")
    if inviter_id == 0:
        invitee_quota = inviter_quota = 0
    claimed = await invite_rows.claim_signup(
        conn,
        user_id=user_id,
        inviter_id=inviter_id,
        new_user_quota=new_user_quota,
        invitee_quota=invitee_quota,
        inviter_quota=inviter_quota,
    )
    if not claimed:
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
        await invite_rows.credit_aff(conn, user_id=inviter_id, quota=inviter_quota)
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


async def transfer(billing: Billing, *, user_id: int, quota: int) -> WalletRow:
    """Move `quota` from aff_quota into quota (at least one QuotaPerUnit); the wallet after."""
    minimum = billing.prices.table.number("QuotaPerUnit")
    async with billing.pool.acquire() as conn, conn.transaction():
        await _transfer(conn, user_id=user_id, quota=quota, minimum=minimum)
    return await balances.of_user(billing, user_id)


async def _transfer(conn: Connection, *, user_id: int, quota: int, minimum: int) -> None:
    if quota < minimum:
        raise InvalidArgument(f"the transfer must be at least {minimum} units")
    await wallets.ensure_wallet(conn, user_id=user_id)
    available = await invite_rows.lock_aff(conn, user_id=user_id)
    if available is None or available < quota:
        raise FailedPrecondition(
            "your invite reward balance is not enough", code="insufficient_aff_quota"
        )
    await invite_rows.debit_aff(conn, user_id=user_id, quota=quota)
    await adjust.adjust(
        conn,
        change=_grant(
            user_id, f"aff-transfer:{uuid.uuid4()}", quota, "invite", f"邀请奖励划转 {quota}"
        ),
    )
