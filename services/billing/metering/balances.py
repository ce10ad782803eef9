"""Wallets and key budgets as users see them (what active leases hold counts as theirs), the
admin's quota adjustment, and the ledger consistency check."""

from __future__ import annotations

from services.billing.context import Billing
from services.billing.metering import adjust as adjustments
from services.billing.metering.adjust import Adjustment
from services.billing.store import ledger, wallets
from services.billing.store.wallets import BudgetRow, WalletRow
from services.shared.errors import InvalidArgument


async def of_users(billing: Billing, user_ids: list[int]) -> list[WalletRow]:
    """Wallets in the order asked; a missing wallet is all zeros."""
    async with billing.pool.acquire() as conn:
        found = await wallets.get_wallets(conn, user_ids=user_ids)
    return [found.get(uid) or WalletRow(uid, 0, 0, 0, 0, 0) for uid in user_ids]


async def of_user(billing: Billing, user_id: int) -> WalletRow:
    return (await of_users(billing, [user_id]))[0]


async def adjust(billing: Billing, change: Adjustment) -> WalletRow:
    """Apply an adjustment (idempotent by its key); the wallet after it."""
    async with billing.pool.acquire() as conn, conn.transaction():
        await adjustments.adjust(conn, change=change)
    return await of_user(billing, change.user_id)


async def set_budget(
    billing: Billing, *, token_id: int, user_id: int, remain_quota: int, unlimited: bool
) -> BudgetRow:
    if token_id <= 0 or user_id <= 0:
        raise InvalidArgument("token_id and user_id must be positive")
    if remain_quota < 0 and not unlimited:
        raise InvalidArgument("remain_quota must not be negative")
    async with billing.pool.acquire() as conn:
        return await wallets.upsert_budget(
            conn, token_id=token_id, user_id=user_id, remain_quota=remain_quota, unlimited=unlimited
        )


async def budgets(billing: Billing, token_ids: list[int]) -> list[BudgetRow]:
    async with billing.pool.acquire() as conn:
        return await wallets.get_budgets(conn, token_ids=token_ids)


async def delete_budgets(billing: Billing, token_ids: list[int]) -> None:
    async with billing.pool.acquire() as conn:
        await wallets.delete_budgets(conn, token_ids=token_ids)


async def check_ledger(billing: Billing, user_ids: list[int]) -> tuple[int, list[ledger.Mismatch]]:
    """(wallets checked, mismatches): each balance must equal the sum of its ledger rows."""
    async with billing.pool.acquire() as conn:
        return await ledger.check(conn, user_ids=user_ids)
