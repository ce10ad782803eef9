"""One settle or release per request, whichever comes first; a settlement that cannot be
built releases the hold instead of leaving it open."""

from __future__ import annotations

from veloera.billing.v1 import billing_pb2

from services.relay.billing.charge import Charge


class Billing:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def settle_later(self, request: billing_pb2.SettleRequest) -> None:
        self.calls.append(("settle", request.request_id))

    def release_later(self, request_id: str, reason: str) -> None:
        self.calls.append(("release", reason))


def test_the_first_settle_wins_and_later_calls_do_nothing() -> None:
    billing = Billing()
    charge = Charge(billing, "r1")
    charge.settle(lambda: billing_pb2.SettleRequest(request_id="r1"))
    charge.settle(lambda: billing_pb2.SettleRequest(request_id="r1"))
    charge.release("client left")
    assert billing.calls == [("settle", "r1")] and charge.done


def test_a_release_first_makes_a_later_settle_a_no_op() -> None:
    billing = Billing()
    charge = Charge(billing, "r1")
    charge.release("upstream failed")
    charge.settle(lambda: billing_pb2.SettleRequest(request_id="r1"))
    charge.release("relay error")
    assert billing.calls == [("release", "upstream failed")]


def test_a_settlement_that_cannot_be_built_releases_the_hold() -> None:
    billing = Billing()
    charge = Charge(billing, "r1")

    def broken() -> billing_pb2.SettleRequest:
        return billing_pb2.SettleRequest(usage=billing_pb2.Usage(prompt_tokens=-(2**70)))

    charge.settle(broken)
    charge.release("relay error")
    assert billing.calls == [("release", "settlement failed")]
