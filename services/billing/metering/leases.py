"""Quota leases (on unless the relay sets BILLING_LEASES=false): grant, return, reap, and
turning a leased request into a hold at settlement. Every function runs inside the caller's
transaction.

Lock order: lease -> hold -> token budget -> wallet, compatible with Reserve (hold -> budget ->
wallet) and batch settlement (holds -> budgets -> wallets), so none of them deadlock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from services.billing.metering.settle_rules import ZERO, Pot, lease_debit
from services.billing.metering.settlement import SettleInput
from services.billing.store import leases as lease_rows
from services.billing.store import ledger, wallets
from services.billing.store.leases import LeaseRecord
from services.billing.store.reserve import TOKEN_EXHAUSTED, USER_EXHAUSTED
from services.shared.db import Connection
from services.shared.errors import NotFound, QuotaExhausted

BALANCE_SHARE = 4


class ConcurrentSettlement(Exception):
    """Another transaction materialised one of these requests first; retry item by item."""


@dataclass(frozen=True, slots=True)
class LeaseSpec:
    lease_id: str
    holder: str
    user_id: int
    token_id: int
    model: str
    group: str
    price_json: str
    first_hold: int
    desired: int
    ttl_seconds: int
    hold_seconds: int


@dataclass(slots=True)
class LeaseFree:
    """A lease locked in this transaction: what of it no settled request has spent yet."""

    user_id: int
    free: Pot
    free_token: int
    active: bool
    spent: Pot = ZERO  # taken in this transaction, written by `spend`
    spent_token: int = 0

    def take(self, amount: Pot, token: int) -> None:
        self.free = self.free.minus(amount)
        self.free_token -= token
        self.spent = self.spent.plus(amount)
        self.spent_token += token


def lease_key(lease_id: str) -> str:
    return f"lease:{lease_id}"


def return_key(lease_id: str) -> str:
    return f"lease-return:{lease_id}"


class TooSmall(Exception):
    """A share of the balance would not cover even one hold: the holder should use one Reserve
    per request, which can use the whole balance exactly."""


async def grant(conn: Connection, *, spec: LeaseSpec) -> tuple[int, datetime]:
    """Carve min(desired, the token's budget, 1/BALANCE_SHARE of the balance) out of the wallet
    and the token budget, at least `first_hold` (else the Reserve refusals; TooSmall when the
    share does not cover one hold). Returns (granted, expires_at)."""
    limited_token = False
    available = spec.desired
    if spec.token_id > 0:
        state = await wallets.lock_budget(conn, token_id=spec.token_id)
        if state is None:
            raise QuotaExhausted("token quota exhausted", code=TOKEN_EXHAUSTED)
        if not state.unlimited:
            if state.remain_quota <= 0 or state.remain_quota < spec.first_hold:
                raise QuotaExhausted("token quota exhausted", code=TOKEN_EXHAUSTED)
            limited_token = True
            available = min(available, state.remain_quota)
    balances = await wallets.lock_wallet(conn, user_id=spec.user_id)
    if balances is None or balances.total <= 0 or balances.total < spec.first_hold:
        raise QuotaExhausted("user quota is not enough", code=USER_EXHAUSTED)
    # At most a share of the balance, so a small balance is not tied up in one replica's lease
    # while another replica refuses requests the user could pay for.
    if balances.total // BALANCE_SHARE < spec.first_hold:
        raise TooSmall
    amount = max(min(available, balances.total // BALANCE_SHARE), spec.first_hold, 0)
    from_subscription, from_quota = wallets.split_debit(balances, amount)
    if amount > 0:
        after = await wallets.debit_wallet(
            conn, user_id=spec.user_id, from_subscription=from_subscription, from_quota=from_quota
        )
        if after is None:
            raise QuotaExhausted("user quota is not enough", code=USER_EXHAUSTED)
        await ledger.append(
            conn,
            user_id=spec.user_id,
            idempotency_key=lease_key(spec.lease_id),
            kind="lease",
            delta_quota=-from_quota,
            delta_subscription=-from_subscription,
            balance_after=after.quota,
            subscription_after=after.subscription,
            reason=f"lease for {spec.model} ({spec.holder})",
        )
    if limited_token and amount > 0:
        await wallets.debit_budget(conn, token_id=spec.token_id, amount=amount)
    expires_at = await lease_rows.insert(
        conn,
        lease_id=spec.lease_id,
        holder=spec.holder,
        user_id=spec.user_id,
        token_id=spec.token_id,
        model=spec.model,
        group=spec.group,
        price_json=spec.price_json,
        quota=from_quota,
        subscription=from_subscription,
        token=amount if limited_token else 0,
        ttl_seconds=float(spec.ttl_seconds),
        hold_seconds=float(spec.hold_seconds),
    )
    return amount, expires_at


async def give_back(conn: Connection, *, lease_id: str) -> tuple[int, bool]:
    """Return the unspent rest to the wallet and the token; (returned, already_returned)."""
    row = await lease_rows.lock(conn, lease_id=lease_id)
    if row is None:
        raise NotFound(f"no lease {lease_id}", code="lease_not_found")
    if row.status == "returned":
        return row.returned, True
    to_quota, to_subscription = row.unspent_quota, row.unspent_subscription
    to_token = row.unspent_token
    if to_token > 0:
        await wallets.credit_budget(conn, token_id=row.token_id, amount=to_token)
    if to_quota + to_subscription > 0:
        after = await wallets.credit_wallet(
            conn, user_id=row.user_id, to_subscription=to_subscription, to_quota=to_quota
        )
        await ledger.append(
            conn,
            user_id=row.user_id,
            idempotency_key=return_key(lease_id),
            kind="lease_return",
            delta_quota=to_quota,
            delta_subscription=to_subscription,
            balance_after=after.quota,
            subscription_after=after.subscription,
            reason="unspent part of the lease",
        )
    await lease_rows.finish(conn, lease_id=lease_id, returned=to_quota + to_subscription)
    return to_quota + to_subscription, False


async def trim(conn: Connection, *, lease_id: str, amount: int) -> int:
    """Give back up to `amount` of a lease's free part now (its holder no longer holds it);
    the lease stays for the requests still in flight. Returns what went back."""
    row = await lease_rows.lock(conn, lease_id=lease_id)
    if row is None or row.status != "active" or amount <= 0:
        return 0
    back, _ = Pot(row.unspent_quota, row.unspent_subscription).take(amount)
    token = min(amount, row.unspent_token)
    if token > 0:
        await wallets.credit_budget(conn, token_id=row.token_id, amount=token)
    if back.total > 0:
        after = await wallets.credit_wallet(
            conn, user_id=row.user_id, to_subscription=back.subscription, to_quota=back.quota
        )
        await ledger.append(
            conn,
            user_id=row.user_id,
            idempotency_key=f"lease-trim:{lease_id}:{uuid.uuid4().hex}",
            kind="lease_return",
            delta_quota=back.quota,
            delta_subscription=back.subscription,
            balance_after=after.quota,
            subscription_after=after.subscription,
            reason="part of the lease its holder no longer holds",
        )
    await lease_rows.trim(
        conn,
        lease_id=lease_id,
        quota=back.quota,
        subscription=back.subscription,
        token=max(token, 0),
    )
    return back.total


async def give_back_all(conn: Connection, *, user_id: int) -> None:
    """Return every active lease of the user (before an admin sets the balance: what the relays
    still hold becomes the wallet's again, so the balance set is the balance). Takes the locks in
    lease -> budget -> wallet order: call it before locking the wallet."""
    for lease_id in await lease_rows.active_for_user(conn, user_id=user_id):
        await give_back(conn, lease_id=lease_id)


async def reap_one(conn: Connection) -> str | None:
    """Return one lease past its reap time; its id, or None when there is none."""
    lease_id = await lease_rows.lock_one_due(conn)
    if lease_id is not None:
        await give_back(conn, lease_id=lease_id)
    return lease_id


async def materialise(conn: Connection, *, specs: list[SettleInput]) -> dict[str, LeaseFree]:
    """Turn leased requests into open holds taken from their lease (`settle_rules.lease_debit`),
    so batch settlement settles them like any hold; returns the locked leases (also every
    active lease of the users the batch settles, per-request holds included), whose free part
    also covers usage above a hold. A request
    already holding a row is left alone (settled before: idempotent). A lease that was returned
    meanwhile gives nothing: the settlement then charges the wallet directly."""
    leased = [s for s in specs if s.lease_id]
    existing = (
        await lease_rows.existing_holds(conn, request_ids=[s.request_id for s in leased])
        if leased
        else set()
    )
    rows = {
        r.lease_id: r
        for r in await lease_rows.lock_for_batch(
            conn,
            lease_ids=sorted({s.lease_id for s in leased}),
            request_ids=[s.request_id for s in specs],
        )
    }
    leases = {lease_id: _free(r) for lease_id, r in rows.items()}
    holds: list[tuple[Any, ...]] = []
    for spec in leased:
        lease = leases.get(spec.lease_id)
        if lease is None or spec.request_id in existing:
            continue  # unknown lease: reported as hold_not_found; known request: idempotent
        existing.add(spec.request_id)
        amount = max(spec.lease_reserved, 0) if lease.active else 0
        taken, token = lease_debit(amount=amount, free=lease.free, free_token=lease.free_token)
        lease.take(taken, token)
        row = rows[spec.lease_id]
        holds.append(
            (spec.request_id, row.user_id, row.token_id, row.model, row.group, row.price,
             taken.quota, taken.subscription, token, spec.lease_id)
        )  # fmt: skip
    if holds and await lease_rows.insert_holds(conn, rows=holds) != len(holds):
        raise ConcurrentSettlement("a leased request was settled concurrently")
    return leases


def _free(row: LeaseRecord) -> LeaseFree:
    """What a locked lease can still pay: nothing once returned (its rest is the wallet's)."""
    if row.status != "active":
        return LeaseFree(row.user_id, ZERO, 0, False)
    return LeaseFree(
        row.user_id, Pot(row.unspent_quota, row.unspent_subscription), row.unspent_token, True
    )


async def spend(conn: Connection, *, leases: dict[str, LeaseFree]) -> None:
    """Write what this transaction took from each lease (holds and usage above them)."""
    ids = sorted(i for i, lease in leases.items() if lease.spent.total or lease.spent_token)
    if ids:
        await lease_rows.spend(
            conn,
            lease_ids=ids,
            quotas=[leases[i].spent.quota for i in ids],
            subscriptions=[leases[i].spent.subscription for i in ids],
            tokens=[leases[i].spent_token for i in ids],
        )


def price_json(price_dict: dict[str, Any]) -> str:
    return orjson.dumps(price_dict).decode()
