"""The settlement money rules: refunds, charges above the hold, leases, budgets, write-offs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.billing.metering.settle_rules import (
    ZERO,
    Pot,
    WalletMove,
    lease_debit,
    release,
    settle,
    settle_budget,
    spread,
    total,
)

amounts = st.integers(min_value=0, max_value=10**9)


def pots() -> st.SearchStrategy[Pot]:
    return st.builds(Pot, amounts, amounts)


def test_a_charge_below_the_hold_refunds_subscription_first() -> None:
    move = settle(final=300, held=Pot(500, 1_000), wallet=Pot(9_000, 0))
    assert move == WalletMove(Pot(200, 1_000), ZERO, ZERO, 300, 0)


def test_a_charge_above_the_hold_takes_the_wallet_subscription_first() -> None:
    move = settle(final=1_500, held=Pot(1_000, 0), wallet=Pot(1_000, 200))
    assert move.debit == Pot(300, 200) and move.charged == 1_500 and move.uncollected == 0


def test_the_lease_covers_what_the_wallet_cannot_before_anything_is_written_off() -> None:
    move = settle(final=1_500, held=Pot(1_000, 0), wallet=Pot(100, 0), lease_free=Pot(300, 0))
    assert move.debit == Pot(100, 0) and move.from_lease == Pot(300, 0)
    assert move.charged == 1_400 and move.uncollected == 100


def test_without_a_wallet_only_the_hold_is_collected() -> None:
    move = settle(final=1_500, held=Pot(1_000, 0), wallet=None)
    assert move.charged == 1_000 and move.uncollected == 500


def test_budgets_refund_take_then_lease_then_write_off() -> None:
    assert settle_budget(final=100, held=300, remain=0).remain_delta == 200
    move = settle_budget(final=500, held=300, remain=50, lease_free=100)
    assert (move.remain_delta, move.from_lease, move.uncollected) == (-50, 100, 50)


def test_a_lease_debit_is_what_the_lease_still_has() -> None:
    assert lease_debit(amount=500, free=Pot(100, 300), free_token=1_000) == (Pot(100, 300), 500)
    assert lease_debit(amount=50, free=Pot(100, 300), free_token=0) == (Pot(0, 50), 0)


def test_usage_above_the_hold_is_spread_over_the_leases_in_order() -> None:
    pots = [Pot(10, 5), Pot(100, 0), Pot(7, 7)]
    assert spread(30, pots) == [Pot(10, 5), Pot(15, 0), ZERO]
    assert spread(1_000, pots) == pots
    assert total(pots) == Pot(117, 12)


@settings(max_examples=300, deadline=None)
@given(amount=amounts, pots=st.lists(pots(), max_size=5))
def test_spreading_takes_exactly_what_the_leases_have(amount: int, pots: list[Pot]) -> None:
    taken = spread(amount, pots)
    assert total(taken).total == min(amount, total(pots).total)
    for part, pot in zip(taken, pots, strict=True):
        assert 0 <= part.quota <= pot.quota and 0 <= part.subscription <= pot.subscription


def test_a_release_gives_the_whole_hold_back() -> None:
    assert release(held=Pot(5, 7)) == Pot(5, 7)


@settings(max_examples=500, deadline=None)
@given(final=amounts, held=pots(), wallet=pots(), lease=pots())
def test_money_is_conserved(final: int, held: Pot, wallet: Pot, lease: Pot) -> None:
    move = settle(final=final, held=held, wallet=wallet, lease_free=lease)
    # Charged is what the hold, the wallet and the lease paid; the rest is written off.
    paid = held.total - move.refund.total + move.debit.total + move.from_lease.total
    assert paid == move.charged and move.charged + move.uncollected == final
    # Nothing is taken beyond what each pot has, nothing negative.
    for part in (move.refund, move.debit, move.from_lease):
        assert part.quota >= 0 and part.subscription >= 0
    assert move.refund.subscription <= held.subscription and move.refund.total <= held.total
    assert move.debit.quota <= wallet.quota and move.debit.subscription <= wallet.subscription
    assert move.from_lease.total <= lease.total
    # Written off only when the wallet and the lease are empty.
    if move.uncollected:
        assert move.debit == wallet and move.from_lease == lease
