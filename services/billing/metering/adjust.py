"""Wallet adjustments outside the request path (grants, admin edits, top-ups), idempotent by key."""

from __future__ import annotations

from dataclasses import dataclass

from services.billing.metering import leases
from services.billing.store import ledger, logs, wallets
from services.billing.store.wallets import Balances
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition, InvalidArgument

KINDS = frozenset({"grant", "admin", "topup", "redeem", "checkin", "invite", "refund"})
_LOG_TYPES = {
    "admin": logs.TYPE_MANAGE,
    "grant": logs.TYPE_MANAGE,
    "topup": logs.TYPE_TOPUP,
    "redeem": logs.TYPE_TOPUP,
    "checkin": logs.TYPE_CHECK_IN,
    "invite": logs.TYPE_SYSTEM,
    "refund": logs.TYPE_SYSTEM,
}


@dataclass(frozen=True, slots=True)
class Adjustment:
    idempotency_key: str
    user_id: int
    delta: int | None
    set_to: int | None
    reason: str
    actor_id: int
    kind: str
    subscription: bool
    log_content: str = ""  # replaces the generated log text when set
    username: str = ""
    # set_to only: the shown balance the caller based the new value on (compare-and-set).
    expected: int | None = None

    @classmethod
    def credit(
        cls, *, key: str, user_id: int, quota: int, kind: str, reason: str, log_content: str
    ) -> Adjustment:
        """Quota the system gives (a code, check-in, top-up, reward): added to the plain
        balance, no admin behind it, once per `key`."""
        return cls(
            idempotency_key=key,
            user_id=user_id,
            delta=quota,
            set_to=None,
            reason=reason,
            actor_id=0,
            kind=kind,
            subscription=False,
            log_content=log_content,
        )


def validate(change: Adjustment) -> None:
    if not change.idempotency_key:
        raise InvalidArgument("idempotency_key is required")
    if change.user_id <= 0:
        raise InvalidArgument("user_id must be positive")
    if (change.delta is None) == (change.set_to is None):
        raise InvalidArgument("exactly one of delta and set_to is required")
    if change.set_to is not None and change.set_to < 0:
        raise InvalidArgument("set_to must not be negative")
    if change.expected is not None and change.set_to is None:
        raise InvalidArgument("expected goes with set_to only")
    if change.kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(sorted(KINDS))}")


def _shown(change: Adjustment, balances: Balances) -> int:
    return balances.subscription if change.subscription else balances.quota


def _check_expected(change: Adjustment, shown: Balances) -> None:
    """Refuse a set_to chosen from a balance that has moved since: applying it would undo
    whatever was spent or granted in between."""
    now = _shown(change, shown)
    if change.expected is not None and now != change.expected:
        raise FailedPrecondition(
            f"the balance is now {now}, not {change.expected}: it changed since it was read",
            code="balance_changed",
        )


def _target(change: Adjustment, before: Balances, leased: Balances) -> Balances:
    """The wallet after the change. `set_to` names the balance the user sees, which includes
    what active leases still hold; the wallet gets that minus the leased part (at least 0).
    `adjust` returns the user's leases first, so the leased part is only a lease granted
    between that and the wallet lock."""
    if change.set_to is not None:
        new = max(change.set_to - _shown(change, leased), 0)
    else:
        new = _shown(change, before) + (change.delta or 0)
    if new < 0:
        raise FailedPrecondition(
            f"the balance is {_shown(change, before.plus(leased))}; subtracting "
            f"{-(change.delta or 0)} would take it below zero",
            code="insufficient_user_quota",
        )
    if change.subscription:
        return Balances(quota=before.quota, subscription=new)
    return Balances(quota=new, subscription=before.subscription)


def _takes_leases_back(change: Adjustment) -> bool:
    """A set balance must be exact, and a subtraction may need what relays hold: both act on
    the whole shown balance, so the user's leases come back to the wallet first."""
    return change.set_to is not None or (change.delta or 0) < 0


async def adjust(conn: Connection, *, change: Adjustment) -> bool:
    """Apply the change once; False when this idempotency key was already applied. The caller
    owns the transaction and must roll it back on a DomainError (nothing is then written)."""
    validate(change)
    await wallets.ensure_wallet(conn, user_id=change.user_id)
    if _takes_leases_back(change):
        # Relays keep serving from their local leases until they retire them; their later
        # settlements are charged to the wallet directly (never below zero).
        await leases.give_back_all(conn, user_id=change.user_id)
    before = await wallets.lock_wallet(conn, user_id=change.user_id)
    assert before is not None
    if await ledger.key_exists(conn, idempotency_key=change.idempotency_key):
        return False
    leased = await wallets.leased_out(conn, user_id=change.user_id)
    # Compared under the wallet lock, so no charge or grant slips in between. A refusal
    # raises, rolling back the caller's transaction (the leases given back included).
    _check_expected(change, before.plus(leased))
    after = _target(change, before, leased)
    await wallets.set_wallet(conn, user_id=change.user_id, balances=after)
    await ledger.append(
        conn,
        user_id=change.user_id,
        idempotency_key=change.idempotency_key,
        kind=change.kind,
        delta_quota=after.quota - before.quota,
        delta_subscription=after.subscription - before.subscription,
        balance_after=after.quota,
        subscription_after=after.subscription,
        actor_id=change.actor_id,
        reason=change.reason,
    )
    # The log speaks of the balance the user sees, leases included.
    await logs.insert(conn, row=_log_row(change, before.plus(leased), after.plus(leased)))
    return True


def _log_row(change: Adjustment, before: Balances, after: Balances) -> logs.LogRow:
    which = "订阅额度" if change.subscription else "额度"
    old, new = (
        (before.subscription, after.subscription)
        if change.subscription
        else (before.quota, after.quota)
    )
    if change.kind == "admin":
        content = f"管理员将用户{which}从 {old} 修改为 {new}"
    else:
        content = f"{change.kind}: {which} {old} -> {new}"
    if change.reason:
        content = f"{content}（{change.reason}）"
    return logs.LogRow(
        user_id=change.user_id,
        username=change.username,
        type=_LOG_TYPES[change.kind],
        content=change.log_content or content,
        quota=new - old,
        other={"kind": change.kind, "actor_id": change.actor_id},
    )
