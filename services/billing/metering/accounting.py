"""Release a hold (give it back), the refund helper, the ledger keys of a settlement, and the
refusal a client sees when its balance cannot cover a request. Reserve itself is the
`reserve_hold` SQL function (migration 0006, store/reserve.py).

Every function here runs inside the caller's transaction. Locks are always taken in the order
hold -> token budget -> wallet, so concurrent requests never deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.billing.store import holds, ledger, wallets
from services.billing.store.holds import Hold
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition, NotFound, QuotaExhausted


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    hold: Hold
    released: int
    already_released: bool


def settle_key(request_id: str) -> str:
    return f"settle:{request_id}"


def release_key(request_id: str) -> str:
    return f"release:{request_id}"


async def lock_hold(conn: Connection, *, request_id: str) -> Hold:
    hold = await holds.lock(conn, request_id=request_id)
    if hold is None:
        raise NotFound(f"no hold for request {request_id}", code="hold_not_found")
    return hold


async def release(conn: Connection, *, request_id: str, reason: str) -> ReleaseResult:
    """Give the whole hold back to the user and the token; idempotent."""
    hold = await lock_hold(conn, request_id=request_id)
    if hold.status == "released":
        return ReleaseResult(hold=hold, released=hold.reserved, already_released=True)
    if hold.status != "open":
        raise FailedPrecondition(
            f"hold {request_id} is already {hold.status}", code=f"hold_{hold.status}"
        )
    if hold.reserved_token > 0:
        await wallets.credit_budget(conn, token_id=hold.token_id, amount=hold.reserved_token)
    await refund(
        conn,
        hold=hold,
        to_subscription=hold.reserved_subscription,
        to_quota=hold.reserved_quota,
        key=release_key(request_id),
        reason=reason or "released",
    )
    await holds.finish(conn, request_id=request_id, status="released", charged=0)
    return ReleaseResult(hold=hold, released=hold.reserved, already_released=False)


async def refund(
    conn: Connection,
    *,
    hold: Hold,
    to_subscription: int,
    to_quota: int,
    key: str,
    reason: str,
) -> None:
    """Credit the wallet and write its ledger row (nothing when the amount is zero)."""
    if to_subscription + to_quota <= 0:
        return
    after = await wallets.credit_wallet(
        conn, user_id=hold.user_id, to_subscription=to_subscription, to_quota=to_quota
    )
    await ledger.append(
        conn,
        user_id=hold.user_id,
        idempotency_key=key,
        kind="release",
        delta_quota=to_quota,
        delta_subscription=to_subscription,
        balance_after=after.quota,
        subscription_after=after.subscription,
        request_id=hold.request_id,
        reason=reason,
    )


def worst_case_refusal(
    exc: QuotaExhausted, amount: int, max_output: int, text: bool
) -> QuotaExhausted:
    """The refusal a client sees when its balance (or key) cannot cover the request's worst
    case: how much it holds and what to change."""
    if not text:
        return QuotaExhausted(f"{exc.message}: this request needs {amount} units", code=exc.code)
    return QuotaExhausted(
        f"{exc.message}: this request may cost up to {amount} units (its prompt and"
        f" {max_output} output tokens); set a lower max_tokens or top up",
        code=exc.code,
    )
