"""Billing over real gRPC: redemption and gift codes, check-in, rate limits, pricing modes."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from veloera.billing.v1 import billing_pb2

from services.shared.errors import error_code_of
from tests.support.accounts_kit import rpc_error
from tests.support.billing_kit import (
    assert_ledger_consistent,
    fund,
    new_request,
    new_user,
    reserve,
    settle,
    wallet,
)
from tests.support.clients import BillingClient

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    Stub = BillingClient


async def set_option(billing: Stub, key: str, value: str) -> None:
    await billing.UpdatePricingOption(
        billing_pb2.UpdatePricingOptionRequest(key=key, value=value, actor_id=1), timeout=10
    )


async def create_codes(billing: Stub, **fields: Any) -> list[str]:
    request = billing_pb2.CreateRedemptionsRequest(
        actor_id=1, name=fields.pop("name", "test"), **fields
    )
    return list((await billing.CreateRedemptions(request, timeout=10)).keys)


async def redeem(billing: Stub, key: str, user: int) -> billing_pb2.RedeemResponse:
    return await billing.Redeem(billing_pb2.RedeemRequest(key=key, user_id=user), timeout=10)


async def test_redemption_code_credits_once(billing: Stub) -> None:
    keys = await create_codes(billing, quota=5_000, count=3)
    assert len(keys) == 3 and len(set(keys)) == 3 and all(len(k) == 32 for k in keys)
    user, other = new_user(), new_user()
    assert (await redeem(billing, keys[0], user)).quota == 5_000
    assert (await wallet(billing, user)).quota == 5_000
    again = await rpc_error(redeem(billing, keys[0], user))
    assert error_code_of(again) == "redemption_used"
    by_other = await rpc_error(redeem(billing, keys[0], other))
    assert error_code_of(by_other) == "redemption_used"
    assert (await wallet(billing, user)).quota == 5_000
    assert (await wallet(billing, other)).quota == 0
    logs = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_TOPUP), timeout=10
    )
    assert logs.total == 1 and "兑换码" in logs.items[0].content
    await assert_ledger_consistent(billing, user)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"quota": -5, "count": 1}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"quota": 0, "count": 1}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"quota": 10, "count": 101}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"quota": 10, "count": 1, "name": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"quota": 10, "count": 1, "name": "x" * 21}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"quota": 10, "count": 2, "key": "custom"}, grpc.StatusCode.INVALID_ARGUMENT),
        (
            {"quota": 10, "count": 1, "valid_from_time": 200, "valid_until_time": 100},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
async def test_bad_redemption_batches_are_refused(
    billing: Stub, fields: dict[str, Any], status: grpc.StatusCode
) -> None:
    error = await rpc_error(create_codes(billing, **fields))
    assert error.code() == status


async def test_custom_keys_are_unique_and_unknown_keys_fail(billing: Stub) -> None:
    key = f"custom-{uuid.uuid4().hex[:12]}"
    assert await create_codes(billing, quota=10, count=1, key=key) == [key]
    duplicate = await rpc_error(create_codes(billing, quota=10, count=1, key=key))
    assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS
    user = new_user()
    unknown = await rpc_error(redeem(billing, "no-such-code", user))
    assert error_code_of(unknown) == "invalid_redemption"
    assert (await wallet(billing, user)).quota == 0


async def test_validity_window_is_enforced(billing: Stub) -> None:
    now = int(time.time())
    [future] = await create_codes(billing, quota=10, count=1, valid_from_time=now + 3600)
    [past] = await create_codes(billing, quota=10, count=1, valid_until_time=now - 10)
    user = new_user()
    assert error_code_of(await rpc_error(redeem(billing, future, user))) == (
        "redemption_not_started"
    )
    assert error_code_of(await rpc_error(redeem(billing, past, user))) == "redemption_expired"
    assert (await wallet(billing, user)).quota == 0


async def test_gift_code_once_per_user_up_to_max_uses(billing: Stub) -> None:
    [key] = await create_codes(billing, quota=700, count=1, is_gift=True, max_uses=2)
    first, second, third = new_user(), new_user(), new_user()
    await redeem(billing, key, first)
    twice = await rpc_error(redeem(billing, key, first))
    assert error_code_of(twice) == "gift_already_redeemed"
    await redeem(billing, key, second)
    exhausted = await rpc_error(redeem(billing, key, third))
    assert error_code_of(exhausted) == "redemption_used"
    quotas = [(await wallet(billing, u)).quota for u in (first, second, third)]
    assert quotas == [700, 700, 0]


async def test_two_users_racing_for_the_last_gift_use(billing: Stub) -> None:
    for _ in range(5):
        [key] = await create_codes(billing, quota=300, count=1, is_gift=True, max_uses=1)
        users = [new_user(), new_user()]
        results = await asyncio.gather(
            *(redeem(billing, key, u) for u in users), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(errors) == 1, results
        assert error_code_of(errors[0]) == "redemption_used"
        total = sum([(await wallet(billing, u)).quota for u in users])
        assert total == 300


async def test_admin_can_disable_list_and_delete_codes(billing: Stub) -> None:
    name = f"adm{uuid.uuid4().hex[:8]}"
    [key] = await create_codes(billing, quota=10, count=1, name=name)
    page = await billing.ListRedemptions(
        billing_pb2.ListRedemptionsRequest(keyword=name, page=1, page_size=10), timeout=10
    )
    assert page.total == 1 and page.items[0].key == key
    code = page.items[0]
    code.status = 2
    await billing.UpdateRedemption(
        billing_pb2.UpdateRedemptionRequest(redemption=code, status_only=True), timeout=10
    )
    disabled = await rpc_error(redeem(billing, key, new_user()))
    assert error_code_of(disabled) == "redemption_disabled"
    deleted = await billing.DeleteRedemption(
        billing_pb2.DeleteRedemptionRequest(invalid_only=True), timeout=10
    )
    assert deleted.deleted >= 1
    gone = await rpc_error(billing.GetRedemption(billing_pb2.GetRedemptionRequest(id=code.id)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_check_in_rewards_once_per_day(billing: Stub) -> None:
    await set_option(billing, "CheckInEnabled", "true")
    await set_option(billing, "CheckInQuota", "1000")
    await set_option(billing, "CheckInMaxQuota", "2000")
    user = new_user()
    status = await billing.GetCheckInStatus(
        billing_pb2.GetCheckInStatusRequest(user_id=user), timeout=10
    )
    assert status.enabled and status.can_check_in
    results = await asyncio.gather(
        *(billing.CheckIn(billing_pb2.CheckInRequest(user_id=user), timeout=10) for _ in range(4)),
        return_exceptions=True,
    )
    rewards = [r for r in results if isinstance(r, billing_pb2.CheckInResponse)]
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(rewards) == 1 and len(errors) == 3
    assert all(error_code_of(e) == "already_checked_in" for e in errors)
    assert 1000 <= rewards[0].quota <= 2000
    assert (await wallet(billing, user)).quota == rewards[0].quota
    status = await billing.GetCheckInStatus(
        billing_pb2.GetCheckInStatusRequest(user_id=user), timeout=10
    )
    assert not status.can_check_in
    logs = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_CHECK_IN), timeout=10
    )
    assert logs.total == 1
    await assert_ledger_consistent(billing, user)


async def test_check_in_can_be_disabled(billing: Stub, saved_pricing: None) -> None:
    await set_option(billing, "CheckInEnabled", "false")
    user = new_user()
    error = await rpc_error(billing.CheckIn(billing_pb2.CheckInRequest(user_id=user)))
    assert error_code_of(error) == "check_in_disabled"
    assert (await wallet(billing, user)).quota == 0


async def test_key_rate_limit_says_how_long_to_wait(billing: Stub) -> None:
    user, token = new_user(), new_user()
    await fund(billing, user, 1_000_000)
    await billing.SetTokenBudget(
        billing_pb2.SetTokenBudgetRequest(token_id=token, user_id=user, unlimited=True), timeout=10
    )
    limits = {"token_rate_limit": billing_pb2.RateLimit(period_ms=60_000, count=2)}
    first = new_request()
    await reserve(billing, user, first, token_id=token, **limits)
    await reserve(billing, user, first, token_id=token, **limits)  # a retry is not counted
    await reserve(billing, user, None, token_id=token, **limits)
    before = await wallet(billing, user)
    error = await rpc_error(reserve(billing, user, None, token_id=token, **limits))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_code_of(error) == "rate_limited"
    metadata = dict(error.trailing_metadata() or ())
    wait = int(metadata["veloera-retry-after"])
    assert 1 <= wait <= 60
    assert f"retry after {wait} s" in (error.details() or "")
    assert (await wallet(billing, user)).quota == before.quota


async def test_user_rate_limit_counts_successes(billing: Stub, saved_pricing: None) -> None:
    await set_option(billing, "ModelRequestRateLimitCount", "0")
    await set_option(billing, "ModelRequestRateLimitSuccessCount", "1")
    await set_option(billing, "ModelRequestRateLimitEnabled", "true")
    user = new_user()
    await fund(billing, user, 1_000_000)
    done = new_request()
    await reserve(billing, user, done)
    await settle(billing, done, 10, 10)
    error = await rpc_error(reserve(billing, user))
    assert error_code_of(error) == "rate_limited"
    other = new_user()  # another user is not limited by this one's requests
    await fund(billing, other, 1_000_000)
    await reserve(billing, other)


async def test_unpriced_model_accepted_by_the_user_setting(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 1_000_000)
    refused = await rpc_error(reserve(billing, user, model="unpriced-model-x"))
    assert error_code_of(refused) == "model_price_error"
    assert (await wallet(billing, user)).quota == 1_000_000
    held = await reserve(billing, user, model="unpriced-model-x", accept_unpriced=True)
    assert held.price.model_ratio == 37.5 and held.price.fallback
    assert held.reserved == (10 + 90) * 37.5


async def test_fallback_single_price_over_grpc(billing: Stub, saved_pricing: None) -> None:
    bad = await rpc_error(
        billing.UpdatePricingOption(
            billing_pb2.UpdatePricingOptionRequest(key="fallback_pricing_enabled", value="true")
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    await set_option(billing, "fallback_single_price", "0.002")
    await set_option(billing, "fallback_pricing_enabled", "true")
    user = new_user()
    await fund(billing, user, 100_000)
    request_id = new_request()
    held = await reserve(billing, user, request_id, model="another-unpriced-y")
    assert held.price.per_call and held.reserved == 1000
    assert (await settle(billing, request_id, 5, 5)).charged == 1000


async def test_redirect_billing_prices_the_requested_name(
    billing: Stub, saved_pricing: None
) -> None:
    user = new_user()
    await fund(billing, user, 1_000_000)
    names: dict[str, Any] = {"requested_model": "gpt-4", "upstream_model": "gpt-4o-mini"}
    upstream = await reserve(billing, user, model="gpt-4o-mini", **names)
    assert upstream.price.priced_model == "gpt-4o-mini"
    await set_option(billing, "redirect_billing_enabled", "true")
    requested = await reserve(billing, user, model="gpt-4o-mini", **names)
    assert requested.price.priced_model == "gpt-4" and requested.price.model_ratio == 15


async def test_image_request_holds_its_price(billing: Stub) -> None:
    user = new_user()
    await fund(billing, user, 1_000_000)
    estimate = billing_pb2.Usage(
        image_count=2, image_size="1024x1024", image_quality="hd", kind="image"
    )
    request_id = new_request()
    held = await reserve(billing, user, request_id, model="dall-e-3", estimate=estimate)
    assert held.reserved == 80_000
    result = await billing.Settle(
        billing_pb2.SettleRequest(request_id=request_id, usage=estimate), timeout=10
    )
    assert result.charged == 80_000
    bad = await rpc_error(
        billing.Settle(
            billing_pb2.SettleRequest(
                request_id=new_request(), usage=billing_pb2.Usage(kind="video")
            )
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    await assert_ledger_consistent(billing, user)
