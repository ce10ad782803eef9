"""The BillingService servicer: every RPC converts its request (api/proto*.py), calls one use
case (metering/, growth/, pricing/) and converts the answer. No SQL and no rules here; domain
errors become status codes in the shared interceptor."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc
from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing.api import proto, proto_growth, proto_logs, proto_pricing
from services.billing.api.settle_batch import apply_batch
from services.billing.context import Billing
from services.billing.growth import checkin, invites, redemptions, topups
from services.billing.metering import balances, history, leasing, reserve, settle
from services.billing.pricing import catalog
from services.billing.store.rate_limits import RETRY_AFTER_KEY, RateLimited
from services.shared.errors import ERROR_CODE_KEY

Context = grpc.aio.ServicerContext[object, object]
T = TypeVar("T")


async def _retry_after(context: Context, pending: Awaitable[T]) -> T:
    """A rate-limit refusal: RESOURCE_EXHAUSTED with how long to wait in trailing metadata
    (`veloera-retry-after`, seconds); the relay answers 429 with Retry-After."""
    try:
        return await pending
    except RateLimited as exc:
        context.set_trailing_metadata(
            ((ERROR_CODE_KEY, exc.code), (RETRY_AFTER_KEY, str(exc.retry_after)))
        )
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message)


class RelayBillingServicer(billing_pb2_grpc.RelayBillingServiceServicer):
    """The relays' request path (RelayBillingService): holds, settlements, leases and the
    relays' own log rows."""

    def __init__(self, billing: Billing) -> None:
        self._billing = billing

    async def Reserve(
        self, request: billing_pb2.ReserveRequest, context: Context
    ) -> billing_pb2.ReserveResponse:
        placed = reserve.reserve(self._billing, proto.reserve_call(request))
        return proto.reserve_pb(await _retry_after(context, placed))

    async def Settle(
        self, request: billing_pb2.SettleRequest, context: Context
    ) -> billing_pb2.SettleResponse:
        result = await settle.settle_one(self._billing, proto.settle_input(request))
        return proto.settle_pb(request.request_id, result)

    async def Release(
        self, request: billing_pb2.ReleaseRequest, context: Context
    ) -> billing_pb2.ReleaseResponse:
        result = await settle.release(
            self._billing, request_id=request.request_id, reason=request.reason
        )
        return proto.release_pb(request.request_id, result)

    async def SettleBatch(
        self, request: billing_pb2.SettleBatchRequest, context: Context
    ) -> billing_pb2.SettleBatchResponse:
        return await apply_batch(self._billing, request)

    async def AcquireLease(
        self, request: billing_pb2.AcquireLeaseRequest, context: Context
    ) -> billing_pb2.Lease:
        return proto.lease_pb(await leasing.acquire(self._billing, proto.lease_call(request)))

    async def ReturnLease(
        self, request: billing_pb2.ReturnLeaseRequest, context: Context
    ) -> billing_pb2.ReturnLeaseResponse:
        return proto.return_lease_pb(await leasing.give_back(self._billing, request.lease_id))

    async def WriteLog(
        self, request: billing_pb2.WriteLogRequest, context: Context
    ) -> billing_pb2.LogEntry:
        row = await history.write(self._billing, proto_logs.free_log_row(request.entry))
        return proto_logs.log_pb(row, admin_view=True)


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, billing: Billing) -> None:
        self._billing = billing

    # Wallets, key budgets, adjustments, the ledger check (metering/balances.py)

    async def GetWallet(
        self, request: billing_pb2.GetWalletRequest, context: Context
    ) -> billing_pb2.Wallet:
        return proto.wallet_pb(await balances.of_user(self._billing, request.user_id))

    async def GetWallets(
        self, request: billing_pb2.GetWalletsRequest, context: Context
    ) -> billing_pb2.GetWalletsResponse:
        user_ids = list(dict.fromkeys(request.user_ids))
        return proto.wallets_pb(await balances.of_users(self._billing, user_ids))

    async def AdjustQuota(
        self, request: billing_pb2.AdjustQuotaRequest, context: Context
    ) -> billing_pb2.Wallet:
        return proto.wallet_pb(await balances.adjust(self._billing, proto.adjustment(request)))

    async def SetTokenBudget(
        self, request: billing_pb2.SetTokenBudgetRequest, context: Context
    ) -> billing_pb2.TokenBudget:
        row = await balances.set_budget(
            self._billing,
            token_id=request.token_id,
            user_id=request.user_id,
            remain_quota=request.remain_quota,
            unlimited=request.unlimited,
        )
        return proto.budget_pb(row)

    async def GetTokenBudgets(
        self, request: billing_pb2.GetTokenBudgetsRequest, context: Context
    ) -> billing_pb2.GetTokenBudgetsResponse:
        return proto.budgets_pb(await balances.budgets(self._billing, list(request.token_ids)))

    async def DeleteTokenBudgets(
        self, request: billing_pb2.DeleteTokenBudgetsRequest, context: Context
    ) -> billing_pb2.DeleteTokenBudgetsResponse:
        await balances.delete_budgets(self._billing, list(request.token_ids))
        return billing_pb2.DeleteTokenBudgetsResponse()

    async def CheckLedger(
        self, request: billing_pb2.CheckLedgerRequest, context: Context
    ) -> billing_pb2.CheckLedgerResponse:
        return proto.ledger_pb(await balances.check_ledger(self._billing, list(request.user_ids)))

    # Prices (pricing/)

    async def GetPricingOptions(
        self, request: billing_pb2.GetPricingOptionsRequest, context: Context
    ) -> billing_pb2.GetPricingOptionsResponse:
        return proto_pricing.options_pb(catalog.options(self._billing.prices))

    async def UpdatePricingOption(
        self, request: billing_pb2.UpdatePricingOptionRequest, context: Context
    ) -> billing_pb2.PricingOption:
        value = await catalog.update_option(
            self._billing.prices, key=request.key, raw=request.value, actor_id=request.actor_id
        )
        return billing_pb2.PricingOption(key=request.key, value=value)

    async def QuotePrice(
        self, request: billing_pb2.QuotePriceRequest, context: Context
    ) -> billing_pb2.Price:
        price = catalog.quote(self._billing.prices, model=request.model, group=request.group)
        return proto.price_pb(price)

    async def ListModelPrices(
        self, request: billing_pb2.ListModelPricesRequest, context: Context
    ) -> billing_pb2.ListModelPricesResponse:
        prices = catalog.price_list(self._billing.prices, models=list(request.models))
        return proto_pricing.price_list_pb(prices)

    # The log (metering/history.py)

    async def ListLogs(
        self, request: billing_pb2.ListLogsRequest, context: Context
    ) -> billing_pb2.ListLogsResponse:
        page = await history.page(
            self._billing,
            filters=proto_logs.log_filter(request),
            page=request.page,
            page_size=request.page_size,
            cursor=request.cursor,
            total=not request.skip_total,
        )
        return proto_logs.page_pb(page, admin_view=request.admin_view)

    async def GetLogStat(
        self, request: billing_pb2.GetLogStatRequest, context: Context
    ) -> billing_pb2.LogStat:
        filters = proto_logs.log_filter(request.query)
        return proto_logs.stat_pb(await history.stat(self._billing, filters))

    async def GetChannelUsage(
        self, request: billing_pb2.GetChannelUsageRequest, context: Context
    ) -> billing_pb2.GetChannelUsageResponse:
        used = await history.channel_usage(self._billing, list(request.channel_ids))
        return proto_logs.channel_usage_pb(used)

    async def DeleteLogs(
        self, request: billing_pb2.DeleteLogsRequest, context: Context
    ) -> billing_pb2.DeleteLogsResponse:
        deleted = await history.delete_before(self._billing, request.before_time)
        return proto_logs.deleted_pb(deleted)

    async def GetQuotaData(
        self, request: billing_pb2.GetQuotaDataRequest, context: Context
    ) -> billing_pb2.QuotaDataResponse:
        points = await history.quota_data(
            self._billing,
            user_id=request.user_id,
            username=request.username,
            start=request.start_time,
            end=request.end_time,
            granularity=request.granularity,
        )
        return proto_logs.quota_data_pb(points)

    # Quota coming in (growth/)

    async def CreateRedemptions(
        self, request: billing_pb2.CreateRedemptionsRequest, context: Context
    ) -> billing_pb2.CreateRedemptionsResponse:
        keys = await redemptions.create(self._billing, proto_growth.new_codes(request))
        return proto_growth.created_pb(keys)

    async def ListRedemptions(
        self, request: billing_pb2.ListRedemptionsRequest, context: Context
    ) -> billing_pb2.ListRedemptionsResponse:
        found = await redemptions.list_page(
            self._billing,
            page=request.page,
            page_size=request.page_size or 10,
            keyword=request.keyword,
            name=request.name,
        )
        return proto_growth.codes_pb(found)

    async def GetRedemption(
        self, request: billing_pb2.GetRedemptionRequest, context: Context
    ) -> billing_pb2.Redemption:
        code = await redemptions.get(self._billing, code_id=request.id)
        return proto_growth.redemption_pb(code)

    async def UpdateRedemption(
        self, request: billing_pb2.UpdateRedemptionRequest, context: Context
    ) -> billing_pb2.Redemption:
        code = await redemptions.update(
            self._billing,
            code_id=request.redemption.id,
            fields=proto_growth.code_fields(request.redemption),
            status_only=request.status_only,
        )
        return proto_growth.redemption_pb(code)

    async def DeleteRedemption(
        self, request: billing_pb2.DeleteRedemptionRequest, context: Context
    ) -> billing_pb2.DeleteRedemptionResponse:
        deleted = await redemptions.delete(
            self._billing,
            code_id=request.id,
            invalid_only=request.invalid_only,
            name=request.name,
            disabled_only=request.disabled_only,
        )
        return proto_growth.deleted_pb(deleted)

    async def DisableRedemptions(
        self, request: billing_pb2.DisableRedemptionsRequest, context: Context
    ) -> billing_pb2.DisableRedemptionsResponse:
        disabled = await redemptions.disable(self._billing, ids=list(request.ids))
        return billing_pb2.DisableRedemptionsResponse(disabled=disabled)

    async def Redeem(
        self, request: billing_pb2.RedeemRequest, context: Context
    ) -> billing_pb2.RedeemResponse:
        code = await redemptions.redeem(self._billing, key=request.key, user_id=request.user_id)
        return proto_growth.redeemed_pb(code)

    async def CheckIn(
        self, request: billing_pb2.CheckInRequest, context: Context
    ) -> billing_pb2.CheckInResponse:
        done = await checkin.check_in(self._billing, user_id=request.user_id)
        return proto_growth.check_in_pb(done)

    async def GetCheckInStatus(
        self, request: billing_pb2.GetCheckInStatusRequest, context: Context
    ) -> billing_pb2.CheckInStatus:
        status = await checkin.status(self._billing, user_id=request.user_id)
        return proto_growth.check_in_status_pb(status)

    async def GrantSignupRewards(
        self, request: billing_pb2.GrantSignupRewardsRequest, context: Context
    ) -> billing_pb2.SignupRewardsResponse:
        granted = await invites.grant_signup(
            self._billing, user_id=request.user_id, inviter_id=request.inviter_id
        )
        return proto_growth.signup_pb(granted)

    async def TransferAffQuota(
        self, request: billing_pb2.TransferAffQuotaRequest, context: Context
    ) -> billing_pb2.Wallet:
        wallet = await invites.transfer(self._billing, user_id=request.user_id, quota=request.quota)
        return proto.wallet_pb(wallet)

    async def QuoteTopUp(
        self, request: billing_pb2.QuoteTopUpRequest, context: Context
    ) -> billing_pb2.TopUpQuote:
        quoted = topups.quote(self._billing, amount=request.amount, group=request.group)
        return proto_growth.top_up_quote_pb(quoted)

    async def CreateTopUp(
        self, request: billing_pb2.CreateTopUpRequest, context: Context
    ) -> billing_pb2.CreateTopUpResponse:
        order = await topups.create(
            self._billing,
            user_id=request.user_id,
            inviter_id=request.inviter_id,
            amount=request.amount,
            method=request.payment_method,
            notify_url=request.notify_url,
            return_url=request.return_url,
            group=request.group,
        )
        return proto_growth.order_pb(order)

    async def CompleteTopUp(
        self, request: billing_pb2.CompleteTopUpRequest, context: Context
    ) -> billing_pb2.CompleteTopUpResponse:
        done = await topups.complete(self._billing, params=dict(request.params))
        return proto_growth.completion_pb(done)
