"""Online top-up through a fake EPay, rebates and invite rewards, over real gRPC and HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import httpx
import pytest
from veloera.billing.v1 import billing_pb2

from services.shared.errors import error_code_of
from tests.fakes.epay import FakeEpay, epay_sign
from tests.support.accounts_kit import rpc_error
from tests.support.billing_kit import assert_ledger_consistent, new_user, wallet
from tests.support.clients import BillingClient
from tests.support.helpers import admin_channel, create_user, root_console

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    Stub = BillingClient

EPAY = FakeEpay(pid="1001", key="merchant-secret-" + uuid.uuid4().hex[:8])


@pytest.fixture
async def billing(billing_addr: str) -> AsyncIterator[Stub]:
    channel = admin_channel(billing_addr)
    stub = BillingClient(channel)
    for key, value in {
        "PayAddress": "https://pay.example.com",
        "EpayId": EPAY.pid,
        "EpayKey": EPAY.key,
        "Price": "7.3",
        "MinTopUp": "2",
        "TopupGroupRatio": '{"default": 1, "vip": 0.8}',
    }.items():
        await stub.UpdatePricingOption(
            billing_pb2.UpdatePricingOptionRequest(key=key, value=value), timeout=10
        )
    try:
        yield stub
    finally:
        await channel.close()


async def order(
    billing: Stub, user: int, amount: int = 10, inviter: int = 0, group: str = "default"
) -> billing_pb2.CreateTopUpResponse:
    return await billing.CreateTopUp(
        billing_pb2.CreateTopUpRequest(
            user_id=user,
            amount=amount,
            group=group,
            payment_method="zfb",
            notify_url="https://console.example.com/api/user/epay/notify",
            return_url="https://console.example.com/log",
            inviter_id=inviter,
        ),
        timeout=10,
    )


async def complete(billing: Stub, params: dict[str, str]) -> billing_pb2.CompleteTopUpResponse:
    return await billing.CompleteTopUp(billing_pb2.CompleteTopUpRequest(params=params), timeout=10)


async def test_quote_uses_price_and_group_ratio(billing: Stub) -> None:
    user = new_user()
    plain = await billing.QuoteTopUp(
        billing_pb2.QuoteTopUpRequest(user_id=user, amount=10, group="default"), timeout=10
    )
    assert (plain.money, plain.quota) == (73.0, 5_000_000)
    vip = await billing.QuoteTopUp(
        billing_pb2.QuoteTopUpRequest(user_id=user, amount=10, group="vip"), timeout=10
    )
    assert vip.money == pytest.approx(58.4)
    for amount in (1, 0, -5):
        low = await rpc_error(
            billing.QuoteTopUp(billing_pb2.QuoteTopUpRequest(user_id=user, amount=amount))
        )
        assert error_code_of(low) == "invalid_topup_amount"


async def test_paid_order_is_credited_once_even_when_notified_concurrently(
    billing: Stub,
) -> None:
    user = new_user()
    created = await order(billing, user, amount=10)
    form = dict(created.params)
    assert created.url == "https://pay.example.com/submit.php"
    assert EPAY.accepts(form) and form["money"] == "73.00"
    params = EPAY.notify(form)
    results = await asyncio.gather(*(complete(billing, params) for _ in range(5)))
    assert sum(not r.already_completed for r in results) == 1
    assert all(r.quota == 5_000_000 and r.user_id == user for r in results)
    assert (await wallet(billing, user)).quota == 5_000_000
    again = await complete(billing, params)
    assert again.already_completed
    assert (await wallet(billing, user)).quota == 5_000_000
    topups = await billing.ListLogs(
        billing_pb2.ListLogsRequest(user_id=user, type=billing_pb2.LOG_TYPE_TOPUP), timeout=10
    )
    assert topups.total == 1 and "在线充值" in topups.items[0].content
    await assert_ledger_consistent(billing, user)


async def test_forged_or_failed_notifications_change_nothing(billing: Stub) -> None:
    user = new_user()
    form = dict((await order(billing, user)).params)
    forged = {**EPAY.notify(form), "money": "7300.00"}  # tampered after signing
    error = await rpc_error(complete(billing, forged))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_code_of(error) == "invalid_signature"
    impostor = FakeEpay(pid=EPAY.pid, key="not-the-merchant-key")
    wrong_key = impostor.notify({**form, "sign": epay_sign(form, impostor.key)})
    assert error_code_of(await rpc_error(complete(billing, wrong_key))) == "invalid_signature"
    unpaid = EPAY.notify(form, status="WAIT_BUYER_PAY")
    assert error_code_of(await rpc_error(complete(billing, unpaid))) == "trade_not_success"
    stranger = {**form, "out_trade_no": "USR1NOnope"}
    unknown = EPAY.notify({**stranger, "sign": epay_sign(stranger, EPAY.key)})
    assert error_code_of(await rpc_error(complete(billing, unknown))) == "topup_not_found"
    assert (await wallet(billing, user)).quota == 0


async def test_rebate_goes_to_the_inviter(billing: Stub, saved_pricing: None) -> None:
    for key, value in {"RebateEnabled": "true", "RebatePercentage": "10"}.items():
        await billing.UpdatePricingOption(
            billing_pb2.UpdatePricingOptionRequest(key=key, value=value), timeout=10
        )
    user, inviter = new_user(), new_user()
    form = dict((await order(billing, user, amount=4, inviter=inviter)).params)
    done = await complete(billing, EPAY.notify(form))
    assert (done.quota, done.rebate) == (2_000_000, 200_000)
    assert (await wallet(billing, inviter)).quota == 200_000
    await assert_ledger_consistent(billing, user, inviter)


async def test_signup_rewards_and_aff_transfer(billing: Stub, saved_pricing: None) -> None:
    for key, value in {
        "QuotaForNewUser": "1000",
        "QuotaForInvitee": "300",
        "QuotaForInviter": "600000",
    }.items():
        await billing.UpdatePricingOption(
            billing_pb2.UpdatePricingOptionRequest(key=key, value=value), timeout=10
        )
    user, inviter = new_user(), new_user()
    request = billing_pb2.GrantSignupRewardsRequest(user_id=user, inviter_id=inviter)
    granted = await billing.GrantSignupRewards(request, timeout=10)
    assert (granted.new_user_quota, granted.invitee_quota, granted.inviter_quota) == (
        1000,
        300,
        600_000,
    )
    assert (await billing.GrantSignupRewards(request, timeout=10)).already_granted
    assert (await wallet(billing, user)).quota == 1300
    mine = await wallet(billing, inviter)
    assert (mine.quota, mine.aff_quota, mine.aff_history) == (0, 600_000, 600_000)
    small = await rpc_error(
        billing.TransferAffQuota(billing_pb2.TransferAffQuotaRequest(user_id=inviter, quota=1000))
    )
    assert small.code() == grpc.StatusCode.INVALID_ARGUMENT
    moved = await billing.TransferAffQuota(
        billing_pb2.TransferAffQuotaRequest(user_id=inviter, quota=500_000), timeout=10
    )
    assert (moved.quota, moved.aff_quota, moved.aff_history) == (500_000, 100_000, 600_000)
    too_much = await rpc_error(
        billing.TransferAffQuota(
            billing_pb2.TransferAffQuotaRequest(user_id=inviter, quota=500_000)
        )
    )
    assert error_code_of(too_much) == "insufficient_aff_quota"
    assert (await wallet(billing, inviter)).quota == 500_000
    await assert_ledger_consistent(billing, user, inviter)


async def test_top_up_through_the_console(billing: Stub, web_url: str) -> None:
    root = await root_console(web_url)
    user, user_id = await create_user(root, quota=0)
    try:
        assert await user.call("POST", "/api/user/amount", json={"amount": 10}) == "73.00"
        bad = await user.envelope("POST", "/api/user/amount", json={"amount": -3})
        assert not bad["success"]
        reply = await user.envelope(
            "POST", "/api/user/pay", json={"amount": 3, "payment_method": "wx"}
        )
        assert reply["success"] and reply["url"].endswith("/submit.php")
        form = reply["data"]
        assert form["notify_url"].endswith("/api/user/epay/notify")
        params = EPAY.notify(form)
        async with httpx.AsyncClient(base_url=web_url, timeout=10) as gateway:
            forged = await gateway.get("/api/user/epay/notify", params={**params, "sign": "0" * 32})
            assert forged.text == "fail"
            first = await gateway.get("/api/user/epay/notify", params=params)
            second = await gateway.get("/api/user/epay/notify", params=params)
        assert (first.text, second.text) == ("success", "success")
        assert (await wallet(billing, user_id)).quota == 1_500_000
    finally:
        await user.aclose()
        await root.aclose()
