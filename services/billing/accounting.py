"""Reserve and release: place a hold (token budget, then wallet, then ledger) or give it back.

Every function here runs inside the caller's transaction. Locks are always taken in the order
hold -> token budget -> wallet, so concurrent requests never deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.billing import holds, ledger, wallets
from services.billing.holds import Hold
from services.billing.pricing import PriceSnapshot
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition, NotFound, QuotaExhausted

TOKEN_EXHAUSTED = "token_quota_exhausted"
USER_EXHAUSTED = "insufficient_user_quota"


@dataclass(frozen=True, slots=True)
class ReserveInput:
    request_id: str
    user_id: int
    token_id: int
    model: str
    group: str
    price: PriceSnapshot
    amount: int
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    hold: Hold
    released: int
    already_released: bool


def hold_key(request_id: str) -> str:
    return f"hold:{request_id}"


def settle_key(request_id: str) -> str:
    return f"settle:{request_id}"


def release_key(request_id: str) -> str:
    return f"release:{request_id}"


async def reserve(conn: Connection, *, spec: ReserveInput) -> tuple[Hold, bool]:
    """(hold, created). A repeated request id returns the existing hold and charges nothing."""
    claimed = await holds.claim(
        conn,
        request_id=spec.request_id,
        user_id=spec.user_id,
        token_id=spec.token_id,
        model=spec.model,
        group=spec.group,
        price=spec.price,
        ttl_seconds=spec.ttl_seconds,
    )
    if not claimed:
        existing = await holds.get(conn, request_id=spec.request_id)
        assert existing is not None
        return existing, False
    reserved_token = await _debit_token(conn, token_id=spec.token_id, amount=spec.amount)
    from_subscription, from_quota = await _debit_user(conn, spec=spec)
    await holds.fill(
        conn,
        request_id=spec.request_id,
        reserved_quota=from_quota,
        reserved_subscription=from_subscription,
        reserved_token=reserved_token,
    )
    hold = await holds.get(conn, request_id=spec.request_id)
    assert hold is not None
    return hold, True


async def _debit_token(conn: Connection, *, token_id: int, amount: int) -> int:
    """Take `amount` from a limited token budget; returns what was taken (0 when unlimited)."""
    if token_id <= 0:
        return 0  # playground and internal calls have no token
    state = await wallets.lock_budget(conn, token_id=token_id)
    if state is None:
        raise QuotaExhausted("token quota exhausted", code=TOKEN_EXHAUSTED)
    if state.unlimited:
        return 0
    if state.remain_quota <= 0 or state.remain_quota < amount:
        raise QuotaExhausted("token quota exhausted", code=TOKEN_EXHAUSTED)
    if amount > 0 and not await wallets.debit_budget(conn, token_id=token_id, amount=amount):
        raise QuotaExhausted("token quota exhausted", code=TOKEN_EXHAUSTED)
    return amount


async def _debit_user(conn: Connection, *, spec: ReserveInput) -> tuple[int, int]:
    """Take the hold from the wallet, subscription quota first; (from_subscription, from_quota)."""
    balances = await wallets.lock_wallet(conn, user_id=spec.user_id)
    if balances is None or balances.total <= 0 or balances.total < spec.amount:
        raise QuotaExhausted("user quota is not enough", code=USER_EXHAUSTED)
    if spec.amount <= 0:
        return 0, 0
    from_subscription, from_quota = wallets.split_debit(balances, spec.amount)
    after = await wallets.debit_wallet(
        conn, user_id=spec.user_id, from_subscription=from_subscription, from_quota=from_quota
    )
    if after is None:
        raise QuotaExhausted("user quota is not enough", code=USER_EXHAUSTED)
    await ledger.append(
        conn,
        user_id=spec.user_id,
        idempotency_key=hold_key(spec.request_id),
        kind="hold",
        delta_quota=-from_quota,
        delta_subscription=-from_subscription,
        balance_after=after.quota,
        subscription_after=after.subscription,
        request_id=spec.request_id,
        reason=f"hold for {spec.model}",
    )
    return from_subscription, from_quota


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
