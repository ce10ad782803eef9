"""Wallet and token-budget rows. Balance changes here never go below zero; the caller writes
the matching ledger row in the same transaction (see ledger.append)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.shared.db import Connection

ENSURE_WALLET = "INSERT INTO wallets (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING"
LOCK_WALLET = "SELECT quota, subscription_quota FROM wallets WHERE user_id = $1 FOR UPDATE"
# Conditional: the row only changes when both parts cover what is taken (never negative).
DEBIT_WALLET = """
UPDATE wallets SET subscription_quota = subscription_quota - $2, quota = quota - $3,
    updated_at = now()
WHERE user_id = $1 AND subscription_quota >= $2 AND quota >= $3
RETURNING quota, subscription_quota
"""
CREDIT_WALLET = """
UPDATE wallets SET subscription_quota = subscription_quota + $2, quota = quota + $3,
    updated_at = now()
WHERE user_id = $1
RETURNING quota, subscription_quota
"""
SET_WALLET = """
UPDATE wallets SET quota = $2, subscription_quota = $3, updated_at = now() WHERE user_id = $1
"""
RECORD_USE = """
UPDATE wallets SET used_quota = used_quota + $2, request_count = request_count + 1,
    updated_at = now()
WHERE user_id = $1
"""
# The unspent part of a user's active leases: quota leased out to a relay is not spent.
_LEASED = """
SELECT COALESCE(SUM(granted_quota - spent_quota), 0) AS quota,
       COALESCE(SUM(granted_subscription - spent_subscription), 0) AS subscription
FROM leases WHERE user_id = {user} AND status = 'active'
"""
LEASED_OUT = _LEASED.format(user="$1")
# A balance shows what leases still hold, so it reads the same whether requests were held by
# Reserve or by a lease.
SELECT_WALLETS = f"""
SELECT w.user_id, (w.quota + l.quota)::bigint AS quota,
       (w.subscription_quota + l.subscription)::bigint AS subscription_quota,
       w.used_quota, w.request_count, w.aff_quota, w.aff_history,
       COALESCE((SELECT SUM(h.reserved_quota + h.reserved_subscription) FROM holds h
                 WHERE h.user_id = w.user_id AND h.status = 'open'), 0) AS held
FROM wallets w
CROSS JOIN LATERAL ({_LEASED.format(user="w.user_id")}) l
WHERE w.user_id = ANY($1::bigint[])
"""

LOCK_BUDGET = "SELECT remain_quota, unlimited FROM token_budgets WHERE token_id = $1 FOR UPDATE"
DEBIT_BUDGET = """
UPDATE token_budgets SET remain_quota = remain_quota - $2, updated_at = now()
WHERE token_id = $1 AND remain_quota >= $2
RETURNING remain_quota
"""
CREDIT_BUDGET = """
UPDATE token_budgets SET remain_quota = remain_quota + $2, updated_at = now()
WHERE token_id = $1 AND NOT unlimited
"""
RECORD_BUDGET_USE = """
UPDATE token_budgets SET used_quota = used_quota + $2, updated_at = now() WHERE token_id = $1
"""
UPSERT_BUDGET = """
INSERT INTO token_budgets (token_id, user_id, remain_quota, unlimited) VALUES ($1, $2, $3, $4)
ON CONFLICT (token_id) DO UPDATE SET user_id = EXCLUDED.user_id,
    remain_quota = EXCLUDED.remain_quota, unlimited = EXCLUDED.unlimited, updated_at = now()
RETURNING token_id, user_id, remain_quota, used_quota, unlimited
"""
SELECT_BUDGETS = """
SELECT b.token_id, b.user_id, b.used_quota, b.unlimited,
       (b.remain_quota + COALESCE((SELECT SUM(granted_token - spent_token) FROM leases
                                   WHERE token_id = b.token_id AND status = 'active'), 0)
       )::bigint AS remain_quota
FROM token_budgets b WHERE b.token_id = ANY($1::bigint[])
"""
DELETE_BUDGETS = "DELETE FROM token_budgets WHERE token_id = ANY($1::bigint[])"


@dataclass(frozen=True, slots=True)
class Balances:
    quota: int
    subscription: int

    @property
    def total(self) -> int:
        return self.quota + self.subscription

    def plus(self, other: Balances) -> Balances:
        return Balances(self.quota + other.quota, self.subscription + other.subscription)


@dataclass(frozen=True, slots=True)
class WalletRow:
    user_id: int
    quota: int
    subscription_quota: int
    used_quota: int
    request_count: int
    held: int
    aff_quota: int = 0
    aff_history: int = 0


@dataclass(frozen=True, slots=True)
class BudgetRow:
    token_id: int
    user_id: int
    remain_quota: int
    used_quota: int
    unlimited: bool


@dataclass(frozen=True, slots=True)
class TokenState:
    remain_quota: int
    unlimited: bool


def split_debit(balances: Balances, amount: int) -> tuple[int, int]:
    """(from subscription, from quota): subscription quota is always spent first."""
    from_subscription = min(balances.subscription, amount)
    return from_subscription, amount - from_subscription


async def ensure_wallet(conn: Connection, *, user_id: int) -> None:
    await conn.execute(ENSURE_WALLET, user_id)


async def lock_wallet(conn: Connection, *, user_id: int) -> Balances | None:
    row = await conn.fetchrow(LOCK_WALLET, user_id)
    if row is None:
        return None
    return Balances(quota=row["quota"], subscription=row["subscription_quota"])


async def debit_wallet(
    conn: Connection, *, user_id: int, from_subscription: int, from_quota: int
) -> Balances | None:
    """Take exactly these amounts, or change nothing and return None."""
    row = await conn.fetchrow(DEBIT_WALLET, user_id, from_subscription, from_quota)
    if row is None:
        return None
    return Balances(quota=row["quota"], subscription=row["subscription_quota"])


async def credit_wallet(
    conn: Connection, *, user_id: int, to_subscription: int, to_quota: int
) -> Balances:
    row = await conn.fetchrow(CREDIT_WALLET, user_id, to_subscription, to_quota)
    if row is None:
        raise LookupError(f"wallet {user_id} does not exist")
    return Balances(quota=row["quota"], subscription=row["subscription_quota"])


async def leased_out(conn: Connection, *, user_id: int) -> Balances:
    """The unspent part of the user's active leases (shown as the user's, held by relays)."""
    row = await conn.fetchrow(LEASED_OUT, user_id)
    assert row is not None
    return Balances(quota=int(row["quota"]), subscription=int(row["subscription"]))


async def set_wallet(conn: Connection, *, user_id: int, balances: Balances) -> None:
    await conn.execute(SET_WALLET, user_id, balances.quota, balances.subscription)


async def record_use(conn: Connection, *, user_id: int, quota: int) -> None:
    await conn.execute(RECORD_USE, user_id, quota)


async def get_wallets(conn: Connection, *, user_ids: list[int]) -> dict[int, WalletRow]:
    rows = await conn.fetch(SELECT_WALLETS, user_ids)
    return {
        row["user_id"]: WalletRow(
            user_id=row["user_id"],
            quota=row["quota"],
            subscription_quota=row["subscription_quota"],
            used_quota=row["used_quota"],
            request_count=row["request_count"],
            held=int(row["held"]),
            aff_quota=row["aff_quota"],
            aff_history=row["aff_history"],
        )
        for row in rows
    }


async def lock_budget(conn: Connection, *, token_id: int) -> TokenState | None:
    row = await conn.fetchrow(LOCK_BUDGET, token_id)
    if row is None:
        return None
    return TokenState(remain_quota=row["remain_quota"], unlimited=row["unlimited"])


async def debit_budget(conn: Connection, *, token_id: int, amount: int) -> bool:
    return await conn.fetchrow(DEBIT_BUDGET, token_id, amount) is not None


async def credit_budget(conn: Connection, *, token_id: int, amount: int) -> None:
    await conn.execute(CREDIT_BUDGET, token_id, amount)


async def record_budget_use(conn: Connection, *, token_id: int, quota: int) -> None:
    await conn.execute(RECORD_BUDGET_USE, token_id, quota)


def _budget(row: asyncpg.Record) -> BudgetRow:
    return BudgetRow(
        token_id=row["token_id"],
        user_id=row["user_id"],
        remain_quota=row["remain_quota"],
        used_quota=row["used_quota"],
        unlimited=row["unlimited"],
    )


async def upsert_budget(
    conn: Connection, *, token_id: int, user_id: int, remain_quota: int, unlimited: bool
) -> BudgetRow:
    row = await conn.fetchrow(UPSERT_BUDGET, token_id, user_id, remain_quota, unlimited)
    assert row is not None
    return _budget(row)


async def get_budgets(conn: Connection, *, token_ids: list[int]) -> list[BudgetRow]:
    return [_budget(row) for row in await conn.fetch(SELECT_BUDGETS, token_ids)]


async def delete_budgets(conn: Connection, *, token_ids: list[int]) -> None:
    await conn.execute(DELETE_BUDGETS, token_ids)
