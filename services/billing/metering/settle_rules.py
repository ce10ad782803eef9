"""The money rules of settlement, pure (no I/O): what a request's final charge takes from its
hold, the wallet, its lease and the key's budget, what goes back, and what is written off.

Every settlement path (SettleBatch, a single Settle, the JetStream fallback) applies these
through `batch.apply`; the SQL modules only read the locked rows and write the results.

- Subscription quota is spent first and refunded first (the hold's subscription part).
- A charge at or below the hold refunds the rest of the hold.
- A charge above the hold takes the difference from the wallet, then from the free part of the
  user's active leases, the request's own first (the relay holds the worst case, so this is
  rare: a prompt longer than the local count, a price raised while the request ran). Only what
  none of them covers is uncollected, so `uncollected > 0` means they are all at zero.
- A key with a limited budget follows the same rules on its own counter.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pot:
    """An amount of quota in its two kinds: plain quota and subscription quota."""

    quota: int = 0
    subscription: int = 0

    @property
    def total(self) -> int:
        return self.quota + self.subscription

    def take(self, amount: int) -> tuple[Pot, Pot]:
        """(taken, left): up to `amount`, subscription first."""
        amount = min(max(amount, 0), max(self.total, 0))
        from_subscription = min(max(self.subscription, 0), amount)
        taken = Pot(amount - from_subscription, from_subscription)
        return taken, self.minus(taken)

    def plus(self, other: Pot) -> Pot:
        return Pot(self.quota + other.quota, self.subscription + other.subscription)

    def minus(self, other: Pot) -> Pot:
        return Pot(self.quota - other.quota, self.subscription - other.subscription)


ZERO = Pot()


@dataclass(frozen=True, slots=True)
class WalletMove:
    """What one settlement does to the wallet and the lease."""

    refund: Pot  # the unused part of the hold, back to the wallet
    debit: Pot  # usage above the hold, taken from the wallet
    from_lease: Pot  # usage above the hold the wallet could not cover, from the lease
    charged: int
    uncollected: int


@dataclass(frozen=True, slots=True)
class BudgetMove:
    """What one settlement does to a limited key budget."""

    remain_delta: int  # added to the budget's remaining quota (negative: taken)
    from_lease: int  # taken from the lease's free token part
    uncollected: int


def settle(*, final: int, held: Pot, wallet: Pot | None, lease_free: Pot = ZERO) -> WalletMove:
    """Turn a hold into the final charge. `wallet` None: the user has no wallet row (deleted),
    so nothing above the hold can be collected."""
    final = max(final, 0)
    over = final - held.total
    if over <= 0:
        back = -over
        to_subscription = min(back, held.subscription)
        refund = Pot(back - to_subscription, to_subscription)
        return WalletMove(refund, ZERO, ZERO, final, 0)
    debit, _ = (wallet or ZERO).take(over)
    from_lease, _ = lease_free.take(over - debit.total)
    uncollected = over - debit.total - from_lease.total
    return WalletMove(ZERO, debit, from_lease, final - uncollected, uncollected)


def settle_budget(*, final: int, held: int, remain: int, lease_free: int = 0) -> BudgetMove:
    """The same for a limited key budget: `held` was taken from it by the hold."""
    over = max(final, 0) - held
    if over <= 0:
        return BudgetMove(-over, 0, 0)
    take = min(over, max(remain, 0))
    from_lease = min(over - take, max(lease_free, 0))
    return BudgetMove(-take, from_lease, over - take - from_lease)


def lease_debit(*, amount: int, free: Pot, free_token: int) -> tuple[Pot, int]:
    """What a leased request's hold takes from its lease: its local hold, as far as the lease's
    free part covers it (subscription first), and the same from the lease's token part (zero
    when the key's budget is unlimited)."""
    taken, _ = free.take(amount)
    return taken, min(max(amount, 0), max(free_token, 0))


def spread(amount: int, pots: list[Pot]) -> list[Pot]:
    """Take `amount` from `pots` in order (subscription first in each); what each gives."""
    taken: list[Pot] = []
    for pot in pots:
        part, _ = pot.take(amount)
        amount -= part.total
        taken.append(part)
    return taken


def total(pots: list[Pot]) -> Pot:
    summed = ZERO
    for pot in pots:
        summed = summed.plus(pot)
    return summed


def release(*, held: Pot) -> Pot:
    """Nothing was served: the whole hold goes back."""
    return held
