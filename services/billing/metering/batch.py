"""Settle holds in one transaction with set-based SQL: the only path that settles a hold (a
single Settle and a deferred settlement are batches of one).

About eight statements per batch whatever its size: lock the holds, lock and update the token
budgets, lock and update the wallets with their ledger rows, insert the log rows and finish the
holds, upsert the usage rollups, mark the rate-limit events. The amounts come from the pure
rules in `settle_rules`, applied to the rows locked in this transaction; the statements are in
store/settle_batch.py.

Locks are taken in the global order leases -> holds -> token budgets -> wallets (each sorted by
key), the order Reserve and lease grants use, so batches never deadlock with them. Wallets are
locked last, late in the transaction, so a busy user's Reserve waits only a few statements.
Items that are not plain open holds (unknown, repeated, released) go to `leftovers`, which the
caller answers after this commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from services.billing.metering import settle_rules as rules
from services.billing.metering.accounting import ReleaseResult, settle_key
from services.billing.metering.leases import LeaseFree
from services.billing.metering.settle_rules import Pot
from services.billing.metering.settlement import SettleInput, SettleResult, consume_log
from services.billing.store import logs
from services.billing.store import settle_batch as sql
from services.billing.store.holds import Hold
from services.shared.db import Connection
from services.shared.errors import DomainError
from services.shared.pricing import PriceSnapshot, settle_amount


@dataclass(frozen=True, slots=True)
class Released:
    request_id: str
    reason: str


@dataclass(slots=True)
class SettleOutcome:
    result: SettleResult | None = None
    error: DomainError | None = None
    # The balance the user sees right after this item (wallet plus the unspent part of their
    # leases; fresh settlements only).
    balance: int | None = None


@dataclass(slots=True)
class ReleaseOutcome:
    result: ReleaseResult | None = None
    error: DomainError | None = None


@dataclass(slots=True)
class _Item:
    index: int
    spec: SettleInput
    hold: Hold
    final: int
    lease: LeaseFree | None  # the lease it was held against
    others: list[LeaseFree]  # the user's other active leases: usage above the hold, last
    charged: int = 0
    balance: int = 0
    uncollected: int = 0
    uncollected_token: int = 0
    log: logs.LogRow | None = None


@dataclass(slots=True)
class Applied:
    """What the batch transaction did; `leftovers` are indexes the caller applies one by one."""

    outcomes: dict[int, SettleOutcome]
    leftovers: list[int]


PriceOf = Callable[[Hold], PriceSnapshot]


async def apply(
    conn: Connection,
    *,
    settlements: list[SettleInput],
    price_of: PriceOf,
    leases: dict[str, LeaseFree],
) -> Applied:
    """Apply every plain item inside the caller's transaction, each charged at `price_of` its
    hold (the live price) by the rules of `settle_rules`; `leases` are the leases locked by
    `leases.materialise`, whose free part covers usage above a hold."""
    ids = sorted({s.request_id for s in settlements})
    found = await sql.lock_holds(conn, request_ids=ids)
    items: list[_Item] = []
    leftovers: list[int] = []
    seen: set[str] = set()
    for index, spec in enumerate(settlements):
        hold = found.get(spec.request_id)
        if hold is None or hold.status != "open" or spec.request_id in seen:
            leftovers.append(index)
            continue
        seen.add(spec.request_id)
        hold = replace(hold, price=price_of(hold))
        final = settle_amount(hold.price, spec.usage)
        own = leases.get(hold.lease_id)
        others = _others(leases, hold)
        items.append(_Item(index, spec, hold, final, own, others))
    if not items:
        return Applied({}, leftovers)
    await _apply_budgets(conn, items)
    await _apply_wallets(conn, items)
    for item in items:
        item.log = consume_log(item.hold, item.spec, charged=item.charged)
        if item.uncollected or item.uncollected_token:
            item.log.other["uncollected"] = item.uncollected
            item.log.other["uncollected_token"] = item.uncollected_token
    log_ids = await sql.insert_logs_and_finish(
        conn, rows=[item.log for item in items if item.log is not None]
    )
    await _upsert_usage(conn, items)
    await sql.mark_success(conn, request_ids=[item.hold.request_id for item in items])
    outcomes = {
        item.index: SettleOutcome(
            result=SettleResult(
                item.hold,
                item.charged,
                max(item.hold.reserved - item.charged, 0),
                False,
                log_ids[item.hold.request_id],
            ),
            balance=item.balance,
        )
        for item in items
    }
    return Applied(outcomes, leftovers)


async def _apply_budgets(conn: Connection, items: list[_Item]) -> None:
    """Token budgets: usage counted, the hold's difference refunded or taken
    (`settle_rules.settle_budget`)."""
    token_ids = sorted({i.hold.token_id for i in items if i.hold.token_id > 0})
    if not token_ids:
        return
    state = {
        token_id: [budget.remain_quota, budget.unlimited]
        for token_id, budget in (await sql.lock_budgets(conn, token_ids=token_ids)).items()
    }
    used: dict[int, int] = defaultdict(int)
    remain_delta: dict[int, int] = defaultdict(int)
    for item in items:
        token_id = item.hold.token_id
        if token_id not in state:
            continue  # no token, or it was deleted meanwhile
        used[token_id] += item.final
        remain, unlimited = state[token_id]
        if unlimited:
            continue
        lease_token = item.lease.free_token if item.lease is not None else 0
        move = rules.settle_budget(
            final=item.final, held=item.hold.reserved_token, remain=remain, lease_free=lease_token
        )
        remain_delta[token_id] += move.remain_delta
        state[token_id][0] = remain + move.remain_delta
        if item.lease is not None and move.from_lease:
            item.lease.take(rules.ZERO, move.from_lease)
        item.uncollected_token = move.uncollected
    ids = sorted(used)
    await sql.update_budgets(
        conn,
        token_ids=ids,
        used=[used[t] for t in ids],
        remain_deltas=[remain_delta[t] for t in ids],
    )


@dataclass(slots=True)
class _Wallet:
    pot: Pot
    used: int = 0
    requests: int = 0


async def _apply_wallets(conn: Connection, items: list[_Item]) -> None:
    """Settle each item in order (`settle_rules.settle`), then write the balances and one
    ledger row per change with the balances right after it."""
    user_ids = sorted({i.hold.user_id for i in items})
    wallets = {
        user_id: _Wallet(Pot(balances.quota, balances.subscription))
        for user_id, balances in (await sql.lock_wallets(conn, user_ids=user_ids)).items()
    }
    entries: list[tuple[Any, ...]] = []
    for item in items:
        hold = item.hold
        wallet = wallets.get(hold.user_id)
        held = Pot(hold.reserved_quota, hold.reserved_subscription)
        payers = ([] if item.lease is None else [item.lease]) + item.others
        move = rules.settle(
            final=item.final,
            held=held,
            wallet=None if wallet is None else wallet.pot,
            lease_free=rules.total([lease.free for lease in payers]),
        )
        item.charged, item.uncollected = move.charged, move.uncollected
        if move.from_lease.total:
            taken = rules.spread(move.from_lease.total, [lease.free for lease in payers])
            for lease, part in zip(payers, taken, strict=True):
                lease.take(part, 0)
        if wallet is None:
            continue
        if move.refund.total:
            wallet.pot = wallet.pot.plus(move.refund)
            entries.append(_entry(hold, "release", move.refund, wallet, "unused part of the hold"))
        if move.debit.total:
            wallet.pot = wallet.pot.minus(move.debit)
            entries.append(_entry(hold, "charge", move.debit, wallet, "usage above the hold", -1))
        if item.charged > 0:
            wallet.used += item.charged
            wallet.requests += 1
        # The balance the user sees: what their relays' leases still hold is theirs too. The
        # wallet alone drops by a quarter when a lease is granted, and a charge paid from a
        # lease leaves it unchanged, so a quota warning compared against it never fired.
        item.balance = wallet.pot.total + rules.total([lease.free for lease in payers]).total
    ids = sorted(wallets)
    await sql.write_wallets(
        conn,
        user_ids=ids,
        quotas=[wallets[u].pot.quota for u in ids],
        subscriptions=[wallets[u].pot.subscription for u in ids],
        used=[wallets[u].used for u in ids],
        requests=[wallets[u].requests for u in ids],
        entries=entries,
    )


def _others(leases: dict[str, LeaseFree], hold: Hold) -> list[LeaseFree]:
    """The hold's user's active leases but its own (all of them for a per-request hold), in
    lease order (the lock order)."""
    return [
        lease
        for lease_id, lease in sorted(leases.items())
        if lease_id != hold.lease_id and lease.active and lease.user_id == hold.user_id
    ]


def _entry(
    hold: Hold, kind: str, amount: Pot, wallet: _Wallet, reason: str, sign: int = 1
) -> tuple[Any, ...]:
    return (
        hold.user_id,
        settle_key(hold.request_id),
        kind,
        sign * amount.quota,
        sign * amount.subscription,
        wallet.pot.quota,
        wallet.pot.subscription,
        hold.request_id,
        reason,
    )


async def _upsert_usage(conn: Connection, items: list[_Item]) -> None:
    """The hourly rollups, one row per (user, model), in key order."""
    totals: dict[tuple[int, str], list[Any]] = {}
    for item in items:
        if item.spec.usage.is_empty or item.log is None:
            continue
        key = (item.hold.user_id, item.log.model_name)
        usage = item.spec.usage
        entry = totals.setdefault(key, ["", 0, 0, 0])
        if item.spec.username:
            entry[0] = item.spec.username
        entry[1] += usage.prompt_tokens + usage.completion_tokens
        entry[2] += 1
        entry[3] += item.charged
    if not totals:
        return
    await sql.upsert_usage(
        conn,
        rows=[
            (k[0], totals[k][0], k[1], totals[k][1], totals[k][2], totals[k][3])
            for k in sorted(totals)
        ],
    )
