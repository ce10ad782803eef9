"""The gRPC servicer: proto in, BillingCore call, proto out. Domain errors map in the
shared interceptor."""

from __future__ import annotations

import grpc
from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

from services.billing import convert
from services.billing.adjust import Adjustment
from services.billing.core import BillingCore, ReserveCall
from services.billing.pricing.table import BILLING_OPTION_KEYS
from services.billing.servicer_batch import BatchRpcs
from services.billing.servicer_extra import ExtraRpcs, GrowthRpcs
from services.billing.store import logs, wallets
from services.billing.store.rate_limits import RETRY_AFTER_KEY, RateLimited
from services.shared.errors import ERROR_CODE_KEY, InvalidArgument

Context = grpc.aio.ServicerContext[object, object]


class BillingServicer(BatchRpcs, ExtraRpcs, GrowthRpcs, billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, core: BillingCore) -> None:
        self._core = core

    async def Reserve(
        self, request: billing_pb2.ReserveRequest, context: Context
    ) -> billing_pb2.ReserveResponse:
        if not request.request_id:
            raise InvalidArgument("request_id is required")
        if request.user_id <= 0:
            raise InvalidArgument("user_id must be positive")
        call = ReserveCall(
            request_id=request.request_id,
            user_id=request.user_id,
            token_id=request.token_id,
            model=request.model,
            group=request.group,
            prompt_tokens=request.prompt_tokens,
            max_tokens=request.max_tokens,
            ttl_seconds=request.ttl_seconds,
            requested_model=request.requested_model,
            upstream_model=request.upstream_model,
            accept_unpriced=request.accept_unpriced,
            estimate=convert.usage_of(request.estimate) if request.HasField("estimate") else None,
            token_rate_limit_period=request.token_rate_limit_period,
            token_rate_limit_count=request.token_rate_limit_count,
            token_rate_limit_success=request.token_rate_limit_success,
        )
        try:
            hold, balance, max_output = await self._core.reserve(call)
        except RateLimited as exc:
            context.set_trailing_metadata(
                ((ERROR_CODE_KEY, exc.code), (RETRY_AFTER_KEY, str(exc.retry_after)))
            )
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message)
        return billing_pb2.ReserveResponse(
            request_id=hold.request_id,
            reserved=hold.reserved,
            price=convert.price_pb(hold.price),
            user_balance_after=balance,
            expires_at=int(hold.expires_at.timestamp()),
            max_output_tokens=max_output,
        )

    async def Settle(
        self, request: billing_pb2.SettleRequest, context: Context
    ) -> billing_pb2.SettleResponse:
        result = await self._core.settle(convert.settle_input(request))
        return billing_pb2.SettleResponse(
            request_id=request.request_id,
            charged=result.charged,
            refunded=result.refunded,
            already_settled=result.already_settled,
            log_id=result.log_id,
        )

    async def Release(
        self, request: billing_pb2.ReleaseRequest, context: Context
    ) -> billing_pb2.ReleaseResponse:
        result = await self._core.release(request_id=request.request_id, reason=request.reason)
        return billing_pb2.ReleaseResponse(
            request_id=request.request_id,
            released=result.released,
            already_released=result.already_released,
        )

    async def GetWallet(
        self, request: billing_pb2.GetWalletRequest, context: Context
    ) -> billing_pb2.Wallet:
        return convert.wallet_pb((await self._core.wallets([request.user_id]))[0])

    async def GetWallets(
        self, request: billing_pb2.GetWalletsRequest, context: Context
    ) -> billing_pb2.GetWalletsResponse:
        rows = await self._core.wallets(list(dict.fromkeys(request.user_ids)))
        return billing_pb2.GetWalletsResponse(wallets=[convert.wallet_pb(row) for row in rows])

    async def AdjustQuota(
        self, request: billing_pb2.AdjustQuotaRequest, context: Context
    ) -> billing_pb2.Wallet:
        which = request.WhichOneof("change")
        change = Adjustment(
            idempotency_key=request.idempotency_key,
            user_id=request.user_id,
            delta=request.delta if which == "delta" else None,
            set_to=request.set_to if which == "set_to" else None,
            reason=request.reason,
            actor_id=request.actor_id,
            kind=request.kind or "admin",
            subscription=request.subscription,
            expected=request.expected if request.HasField("expected") else None,
        )
        return convert.wallet_pb(await self._core.adjust(change))

    async def SetTokenBudget(
        self, request: billing_pb2.SetTokenBudgetRequest, context: Context
    ) -> billing_pb2.TokenBudget:
        if request.token_id <= 0 or request.user_id <= 0:
            raise InvalidArgument("token_id and user_id must be positive")
        if request.remain_quota < 0 and not request.unlimited:
            raise InvalidArgument("remain_quota must not be negative")
        async with self._core.pool.acquire() as conn:
            row = await wallets.upsert_budget(
                conn,
                token_id=request.token_id,
                user_id=request.user_id,
                remain_quota=request.remain_quota,
                unlimited=request.unlimited,
            )
        return convert.budget_pb(row)

    async def GetTokenBudgets(
        self, request: billing_pb2.GetTokenBudgetsRequest, context: Context
    ) -> billing_pb2.GetTokenBudgetsResponse:
        async with self._core.pool.acquire() as conn:
            rows = await wallets.get_budgets(conn, token_ids=list(request.token_ids))
        return billing_pb2.GetTokenBudgetsResponse(budgets=[convert.budget_pb(r) for r in rows])

    async def DeleteTokenBudgets(
        self, request: billing_pb2.DeleteTokenBudgetsRequest, context: Context
    ) -> billing_pb2.DeleteTokenBudgetsResponse:
        async with self._core.pool.acquire() as conn:
            await wallets.delete_budgets(conn, token_ids=list(request.token_ids))
        return billing_pb2.DeleteTokenBudgetsResponse()

    async def GetPricingOptions(
        self, request: billing_pb2.GetPricingOptionsRequest, context: Context
    ) -> billing_pb2.GetPricingOptionsResponse:
        table = self._core.prices.table
        options = [
            billing_pb2.PricingOption(key=key, value=table.option_text(key))
            for key in sorted(BILLING_OPTION_KEYS)
        ]
        return billing_pb2.GetPricingOptionsResponse(options=options)

    async def UpdatePricingOption(
        self, request: billing_pb2.UpdatePricingOptionRequest, context: Context
    ) -> billing_pb2.PricingOption:
        value = await self._core.prices.update(
            key=request.key, raw=request.value, actor_id=request.actor_id
        )
        return billing_pb2.PricingOption(key=request.key, value=value)

    async def QuotePrice(
        self, request: billing_pb2.QuotePriceRequest, context: Context
    ) -> billing_pb2.Price:
        return convert.price_pb(self._core.quote(model=request.model, group=request.group))

    async def ListLogs(
        self, request: billing_pb2.ListLogsRequest, context: Context
    ) -> billing_pb2.ListLogsResponse:
        async with self._core.pool.acquire() as conn:
            page = await logs.list_page(
                conn,
                filters=convert.log_filter(request),
                page=request.page,
                page_size=request.page_size,
                cursor=request.cursor,
                count_total=not request.skip_total,
            )
        items = [convert.log_pb(row, admin_view=request.admin_view) for row in page.rows]
        return billing_pb2.ListLogsResponse(
            items=items, total=page.total, next_cursor=page.next_cursor
        )

    async def CheckLedger(
        self, request: billing_pb2.CheckLedgerRequest, context: Context
    ) -> billing_pb2.CheckLedgerResponse:
        user_ids = list(request.user_ids)
        checked, mismatches = await self._core.check_ledger(user_ids)
        return billing_pb2.CheckLedgerResponse(
            consistent=not mismatches,
            wallets_checked=checked,
            mismatches=[
                billing_pb2.LedgerMismatch(
                    user_id=m.user_id, wallet_quota=m.wallet_value, ledger_sum=m.ledger_sum
                )
                for m in mismatches
            ],
        )
