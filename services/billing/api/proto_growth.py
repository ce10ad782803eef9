"""Conversions of the growth RPCs: redemption codes, check-in, signup rewards, top-ups."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from veloera.billing.v1 import billing_pb2

from services.billing.growth.checkin import Status
from services.billing.growth.invites import SignupRewards
from services.billing.growth.redemptions import NewCodes
from services.billing.growth.topups import Completion, Order
from services.billing.store.redemptions import Code


def _ts(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def redemption_pb(code: Code) -> billing_pb2.Redemption:
    return billing_pb2.Redemption(
        id=code.id,
        user_id=code.user_id,
        key=code.key,
        status=code.status,
        name=code.name,
        quota=code.quota,
        created_time=_ts(code.created_time),
        redeemed_time=_ts(code.redeemed_time),
        used_user_id=code.used_user_id,
        valid_from_time=code.valid_from,
        valid_until_time=code.valid_until,
        is_gift=code.is_gift,
        max_uses=code.max_uses,
        used_count=code.used_count,
    )


def new_codes(request: billing_pb2.CreateRedemptionsRequest) -> NewCodes:
    return NewCodes(
        actor_id=request.actor_id,
        name=request.name,
        quota=request.quota,
        count=request.count or 1,
        key=request.key,
        is_gift=request.is_gift,
        max_uses=request.max_uses,
        valid_from=request.valid_from_time,
        valid_until=request.valid_until_time,
    )


def code_fields(redemption: billing_pb2.Redemption) -> dict[str, Any]:
    return {
        "name": redemption.name,
        "quota": redemption.quota,
        "valid_from": redemption.valid_from_time,
        "valid_until": redemption.valid_until_time,
        "max_uses": redemption.max_uses,
        "status": redemption.status,
    }


def created_pb(keys: list[str]) -> billing_pb2.CreateRedemptionsResponse:
    return billing_pb2.CreateRedemptionsResponse(keys=keys)


def codes_pb(found: tuple[list[Code], int]) -> billing_pb2.ListRedemptionsResponse:
    codes, total = found
    return billing_pb2.ListRedemptionsResponse(items=[redemption_pb(c) for c in codes], total=total)


def deleted_pb(deleted: int) -> billing_pb2.DeleteRedemptionResponse:
    return billing_pb2.DeleteRedemptionResponse(deleted=deleted)


def redeemed_pb(code: Code) -> billing_pb2.RedeemResponse:
    return billing_pb2.RedeemResponse(quota=code.quota, redemption_id=code.id)


def check_in_pb(done: tuple[int, date]) -> billing_pb2.CheckInResponse:
    quota, day = done
    return billing_pb2.CheckInResponse(quota=quota, day=day.isoformat())


def check_in_status_pb(status: Status) -> billing_pb2.CheckInStatus:
    return billing_pb2.CheckInStatus(
        enabled=status.enabled, can_check_in=status.can_check_in, day=status.day.isoformat()
    )


def signup_pb(granted: SignupRewards) -> billing_pb2.SignupRewardsResponse:
    return billing_pb2.SignupRewardsResponse(
        new_user_quota=granted.new_user_quota,
        invitee_quota=granted.invitee_quota,
        inviter_quota=granted.inviter_quota,
        already_granted=granted.already_granted,
    )


def top_up_quote_pb(quoted: tuple[Decimal, int]) -> billing_pb2.TopUpQuote:
    money, quota = quoted
    return billing_pb2.TopUpQuote(money=float(money), quota=quota)


def order_pb(order: Order) -> billing_pb2.CreateTopUpResponse:
    return billing_pb2.CreateTopUpResponse(
        trade_no=order.trade_no, url=order.url, params=order.params, money=float(order.money)
    )


def completion_pb(done: Completion) -> billing_pb2.CompleteTopUpResponse:
    return billing_pb2.CompleteTopUpResponse(
        trade_no=done.trade_no,
        user_id=done.user_id,
        quota=done.quota,
        already_completed=done.already_completed,
        rebate=done.rebate,
    )
