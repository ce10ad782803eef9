"""Online top-up money rules (upstream `controller/topup.go`): what a user pays for an amount,
and which EPay callbacks are believed. Pure functions, no services."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from services.billing.growth.topups import EpayConfig, Pricing, sign, verify
from services.shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied

EPAY = EpayConfig(address="https://pay.example", pid="1001", key="merchant-key")


def test_the_price_follows_the_rate_and_the_group_and_rounds_to_the_cent() -> None:
    pricing = Pricing(price=7.3, min_top_up=1, group_ratio=0.9, quota_per_unit=500_000)
    assert pricing.quote(10) == (Decimal("65.70"), 5_000_000)
    odd = Pricing(price=7.333, min_top_up=1, group_ratio=1.0, quota_per_unit=500_000)
    assert odd.quote(1) == (Decimal("7.33"), 500_000)  # half-up to the cent, never more


@pytest.mark.parametrize("amount", [0, -5, 4])
def test_amounts_below_the_minimum_are_refused(amount: int) -> None:
    pricing = Pricing(price=7.3, min_top_up=5, group_ratio=1.0, quota_per_unit=500_000)
    with pytest.raises(InvalidArgument, match="at least 5"):
        pricing.quote(amount)


def test_a_payment_that_rounds_to_nothing_is_refused() -> None:
    free = Pricing(price=0.001, min_top_up=1, group_ratio=1.0, quota_per_unit=500_000)
    with pytest.raises(InvalidArgument, match="too small"):
        free.quote(1)


def _callback(**fields: str) -> dict[str, str]:
    params = {"pid": "1001", "out_trade_no": "T1", "trade_status": "TRADE_SUCCESS", **fields}
    params["sign"] = sign(params, EPAY.key)
    params["sign_type"] = "MD5"
    return params


def test_the_signature_is_epays_md5_over_the_sorted_non_empty_fields() -> None:
    params = {"b": "2", "a": "1", "empty": "", "sign": "x", "sign_type": "MD5"}
    assert sign(params, "k") == hashlib.md5(b"a=1&b=2k").hexdigest()


def test_an_authentic_successful_callback_names_its_order() -> None:
    assert verify(_callback(), EPAY) == "T1"
    upper = _callback()
    upper["sign"] = upper["sign"].upper()
    assert verify(upper, EPAY) == "T1"


def test_forged_foreign_or_unpaid_callbacks_credit_nothing() -> None:
    forged = _callback()
    forged["money"] = "9999"  # changed after signing
    with pytest.raises(PermissionDenied, match="signature"):
        verify(forged, EPAY)
    with pytest.raises(PermissionDenied, match="merchant"):
        verify(_callback(pid="2002"), EPAY)
    with pytest.raises(FailedPrecondition, match="did not succeed"):
        verify(_callback(trade_status="WAIT_BUYER_PAY"), EPAY)
    unsigned = _callback()
    del unsigned["sign"]
    with pytest.raises(PermissionDenied):
        verify(unsigned, EPAY)
    with pytest.raises(FailedPrecondition, match="not configured"):
        verify(_callback(), EpayConfig(address="", pid="1001", key="merchant-key"))
