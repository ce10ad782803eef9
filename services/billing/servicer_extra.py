"""gRPC methods for log stats and history deletion, usage data, the pricing page, redemption
codes and check-in (mixed into BillingServicer)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
from veloera.billing.v1 import billing_pb2

from services.billing import checkin, convert, invites, redemptions, topups
from services.billing.store import logs, partitions, usage_data
from services.shared.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from services.billing.core import BillingCore
    from services.billing.pricing.table import PricingTable

Context = grpc.aio.ServicerContext[object, object]
USD_PER_RATIO_PER_MILLION = 2.0  # model ratio 1 = $2 per 1M tokens


def _ts(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def redemption_pb(code: redemptions.Code) -> billing_pb2.Redemption:
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
        valid_from=code.valid_from,
        valid_until=code.valid_until,
        is_gift=code.is_gift,
        max_uses=code.max_uses,
        used_count=code.used_count,
    )


def _model_price(table: PricingTable, model: str, group: str) -> billing_pb2.ModelPriceInfo:
    try:
        price = table.resolve(model, group)
    except FailedPrecondition:
        return billing_pb2.ModelPriceInfo(model_name=model, priced=False)
    input_usd = 0.0 if price.per_call else price.model_ratio * USD_PER_RATIO_PER_MILLION
    return billing_pb2.ModelPriceInfo(
        model_name=model,
        per_call=price.per_call,
        model_price=price.model_price,
        model_ratio=price.model_ratio,
        completion_ratio=price.completion_ratio,
        cache_ratio=price.cache_ratio,
        input_per_million=input_usd,
        output_per_million=input_usd * price.completion_ratio,
        priced=True,
    )


class ExtraRpcs:
    _core: BillingCore

    async def GetLogStat(
        self, request: billing_pb2.ListLogsRequest, context: Context
    ) -> billing_pb2.LogStat:
        async with self._core.pool.acquire() as conn:
            result = await logs.stat(conn, filters=convert.log_filter(request), now=time.time())
        return billing_pb2.LogStat(
            quota=result.quota,
            rpm=result.rpm,
            tpm=result.tpm,
            count=result.count,
            window_seconds=result.window_seconds,
        )

    async def GetChannelUsage(
        self, request: billing_pb2.GetChannelUsageRequest, context: Context
    ) -> billing_pb2.GetChannelUsageResponse:
        async with self._core.pool.acquire() as conn:
            found = await logs.channel_usage(conn, channel_ids=list(request.channel_ids))
        return billing_pb2.GetChannelUsageResponse(
            usage=[
                billing_pb2.ChannelUsage(channel_id=cid, used_quota=used, request_count=count)
                for cid, (used, count) in sorted(found.items())
            ]
        )

    async def WriteLog(
        self, request: billing_pb2.WriteLogRequest, context: Context
    ) -> billing_pb2.LogEntry:
        row = convert.free_log_row(request.entry)
        async with self._core.pool.acquire() as conn:
            row.id = await logs.insert(conn, row=row)
        row.created_at = datetime.now(UTC)
        return convert.log_pb(row, admin_view=True)

    async def DeleteLogs(
        self, request: billing_pb2.DeleteLogsRequest, context: Context
    ) -> billing_pb2.DeleteLogsResponse:
        if request.before_timestamp <= 0:
            raise InvalidArgument("before_timestamp must be a positive unix time")
        before = datetime.fromtimestamp(request.before_timestamp, tz=UTC)
        async with self._core.pool.acquire() as conn:
            deleted, dropped = await partitions.delete_before(conn, before=before)
        return billing_pb2.DeleteLogsResponse(deleted=deleted, partitions_dropped=dropped)

    async def GetQuotaData(
        self, request: billing_pb2.QuotaDataRequest, context: Context
    ) -> billing_pb2.QuotaDataResponse:
        async with self._core.pool.acquire() as conn:
            points = await usage_data.query(
                conn,
                user_id=request.user_id,
                username=request.username,
                start=request.start_timestamp,
                end=request.end_timestamp,
                granularity=request.granularity,
            )
        return billing_pb2.QuotaDataResponse(
            items=[
                billing_pb2.QuotaDataPoint(
                    user_id=p.user_id,
                    username=p.username,
                    model_name=p.model_name,
                    created_at=_ts(p.created_at),
                    token_used=p.token_used,
                    count=p.count,
                    quota=p.quota,
                )
                for p in points
            ]
        )

    async def ListModelPrices(
        self, request: billing_pb2.ListModelPricesRequest, context: Context
    ) -> billing_pb2.ListModelPricesResponse:
        table = self._core.prices.table
        group_ratio = {k: float(v) for k, v in table.values["GroupRatio"].items()}
        items = [
            _model_price(
                table,
                model,
                "default" if "default" in group_ratio else next(iter(group_ratio), "default"),
            )
            for model in (sorted(set(request.models)) or table.priced_models())
        ]
        return billing_pb2.ListModelPricesResponse(
            items=items,
            group_ratio=group_ratio,
            usable_groups={k: str(v) for k, v in table.values["UserUsableGroups"].items()},
        )

    async def CreateRedemptions(
        self, request: billing_pb2.CreateRedemptionsRequest, context: Context
    ) -> billing_pb2.CreateRedemptionsResponse:
        spec = redemptions.NewCodes(
            actor_id=request.actor_id,
            name=request.name,
            quota=request.quota,
            count=request.count or 1,
            key=request.key,
            is_gift=request.is_gift,
            max_uses=request.max_uses,
            valid_from=request.valid_from,
            valid_until=request.valid_until,
        )
        async with self._core.pool.acquire() as conn, conn.transaction():
            keys = await redemptions.create(conn, spec=spec)
        return billing_pb2.CreateRedemptionsResponse(keys=keys)

    async def ListRedemptions(
        self, request: billing_pb2.ListRedemptionsRequest, context: Context
    ) -> billing_pb2.ListRedemptionsResponse:
        async with self._core.pool.acquire() as conn:
            codes, total = await redemptions.list_page(
                conn, page=request.page, page_size=request.page_size or 10, keyword=request.keyword
            )
        return billing_pb2.ListRedemptionsResponse(
            items=[redemption_pb(c) for c in codes], total=total
        )

    async def GetRedemption(
        self, request: billing_pb2.GetRedemptionRequest, context: Context
    ) -> billing_pb2.Redemption:
        async with self._core.pool.acquire() as conn:
            return redemption_pb(await redemptions.get(conn, code_id=request.id))

    async def UpdateRedemption(
        self, request: billing_pb2.UpdateRedemptionRequest, context: Context
    ) -> billing_pb2.Redemption:
        r = request.redemption
        fields = {
            "name": r.name,
            "quota": r.quota,
            "valid_from": r.valid_from,
            "valid_until": r.valid_until,
            "max_uses": r.max_uses,
            "status": r.status,
        }
        async with self._core.pool.acquire() as conn, conn.transaction():
            code = await redemptions.update(
                conn, code_id=r.id, fields=fields, status_only=request.status_only
            )
        return redemption_pb(code)

    async def DeleteRedemption(
        self, request: billing_pb2.DeleteRedemptionRequest, context: Context
    ) -> billing_pb2.DeleteRedemptionResponse:
        async with self._core.pool.acquire() as conn:
            if request.invalid_only:
                deleted = await redemptions.delete_invalid(conn)
            else:
                deleted = await redemptions.delete(conn, code_id=request.id)
        return billing_pb2.DeleteRedemptionResponse(deleted=deleted)

    async def Redeem(
        self, request: billing_pb2.RedeemRequest, context: Context
    ) -> billing_pb2.RedeemResponse:
        async with self._core.pool.acquire() as conn, conn.transaction():
            code = await redemptions.redeem(conn, key=request.key, user_id=request.user_id)
        return billing_pb2.RedeemResponse(quota=code.quota, redemption_id=code.id)

    async def CheckIn(
        self, request: billing_pb2.CheckInRequest, context: Context
    ) -> billing_pb2.CheckInResponse:
        table = self._core.prices.table
        if not table.flag("CheckInEnabled"):
            raise FailedPrecondition("daily check-in is not enabled", code="check_in_disabled")
        day = checkin.today(str(table.values["CheckInTimeZone"]))
        quota = checkin.reward(table.number("CheckInQuota"), table.number("CheckInMaxQuota"))
        async with self._core.pool.acquire() as conn, conn.transaction():
            await checkin.check_in(conn, user_id=request.user_id, day=day, quota=quota)
        return billing_pb2.CheckInResponse(quota=quota, day=day.isoformat())

    async def GetCheckInStatus(
        self, request: billing_pb2.CheckInRequest, context: Context
    ) -> billing_pb2.CheckInStatus:
        table = self._core.prices.table
        enabled = table.flag("CheckInEnabled")
        day = checkin.today(str(table.values["CheckInTimeZone"]))
        async with self._core.pool.acquire() as conn:
            can = await checkin.can_check_in(conn, user_id=request.user_id, day=day)
        return billing_pb2.CheckInStatus(
            enabled=enabled, can_check_in=enabled and can, day=day.isoformat()
        )


class GrowthRpcs:
    """Invites and online top-ups."""

    _core: BillingCore

    def _epay(self) -> topups.EpayConfig:
        values = self._core.prices.table.values
        return topups.EpayConfig(
            address=str(values["PayAddress"]), pid=str(values["EpayId"]), key=str(values["EpayKey"])
        )

    def _topup_pricing(self, group: str) -> topups.Pricing:
        table = self._core.prices.table
        ratios: dict[str, float] = table.values["TopupGroupRatio"]
        return topups.Pricing(
            price=float(table.values["Price"]),
            min_top_up=table.number("MinTopUp"),
            group_ratio=float(ratios.get(group or "default", 1.0)),
            quota_per_unit=table.number("QuotaPerUnit"),
        )

    async def GrantSignupRewards(
        self, request: billing_pb2.SignupRewardsRequest, context: Context
    ) -> billing_pb2.SignupRewardsResponse:
        table = self._core.prices.table
        async with self._core.pool.acquire() as conn, conn.transaction():
            granted = await invites.grant_signup(
                conn,
                user_id=request.user_id,
                inviter_id=request.inviter_id,
                new_user_quota=table.number("QuotaForNewUser"),
                invitee_quota=table.number("QuotaForInvitee"),
                inviter_quota=table.number("QuotaForInviter"),
            )
        return billing_pb2.SignupRewardsResponse(
            new_user_quota=granted.new_user_quota,
            invitee_quota=granted.invitee_quota,
            inviter_quota=granted.inviter_quota,
            already_granted=granted.already_granted,
        )

    async def TransferAffQuota(
        self, request: billing_pb2.TransferAffQuotaRequest, context: Context
    ) -> billing_pb2.Wallet:
        minimum = self._core.prices.table.number("QuotaPerUnit")
        async with self._core.pool.acquire() as conn, conn.transaction():
            await invites.transfer(
                conn, user_id=request.user_id, quota=request.quota, minimum=minimum
            )
        return convert.wallet_pb((await self._core.wallets([request.user_id]))[0])

    async def QuoteTopUp(
        self, request: billing_pb2.TopUpQuoteRequest, context: Context
    ) -> billing_pb2.TopUpQuote:
        money, quota = self._topup_pricing(request.group).quote(request.amount)
        return billing_pb2.TopUpQuote(money=float(money), quota=quota)

    async def CreateTopUp(
        self, request: billing_pb2.CreateTopUpRequest, context: Context
    ) -> billing_pb2.CreateTopUpResponse:
        async with self._core.pool.acquire() as conn:
            order = await topups.create(
                conn,
                user_id=request.user_id,
                inviter_id=request.inviter_id,
                amount=request.amount,
                method=request.payment_method,
                notify_url=request.notify_url,
                return_url=request.return_url,
                pricing=self._topup_pricing(request.group),
                epay=self._epay(),
            )
        return billing_pb2.CreateTopUpResponse(
            trade_no=order.trade_no, url=order.url, params=order.params, money=float(order.money)
        )

    async def CompleteTopUp(
        self, request: billing_pb2.CompleteTopUpRequest, context: Context
    ) -> billing_pb2.CompleteTopUpResponse:
        table = self._core.prices.table
        percent = float(table.values["RebatePercentage"]) if table.flag("RebateEnabled") else 0.0
        async with self._core.pool.acquire() as conn, conn.transaction():
            done = await topups.complete(
                conn, params=dict(request.params), epay=self._epay(), rebate_percent=percent
            )
        return billing_pb2.CompleteTopUpResponse(
            trade_no=done.trade_no,
            user_id=done.user_id,
            quota=done.quota,
            already_completed=done.already_completed,
            rebate=done.rebate,
        )
