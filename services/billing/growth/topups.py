"""Online top-up through EPay (upstream `controller/topup.go`, `service/epay.go`): quotes,
signed orders, and the notify callback verified (MD5 of the sorted parameters + key) and applied
exactly once, with the rebate."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from services.billing.context import Billing
from services.billing.metering import adjust
from services.billing.pricing.table import PricingTable
from services.billing.store import topups as orders
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

CENT = Decimal("0.01")


def sign(params: dict[str, str], key: str) -> str:
    """EPay's signature: MD5 of `k=v&...` over the non-empty parameters sorted by name
    (without sign and sign_type), with the merchant key appended."""
    items = sorted((k, v) for k, v in params.items() if k not in {"sign", "sign_type"} and v != "")
    text = "&".join(f"{k}={v}" for k, v in items) + key
    # MD5 is what the EPay protocol specifies; it is not our choice.
    return hashlib.md5(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class EpayConfig:
    address: str
    pid: str
    key: str

    def check(self) -> None:
        if not (self.address and self.pid and self.key):
            raise FailedPrecondition("online top-up is not configured", code="topup_not_configured")


@dataclass(frozen=True, slots=True)
class Pricing:
    price: float  # payment currency per 1 USD
    min_top_up: int
    group_ratio: float
    quota_per_unit: int

    def quote(self, amount: int) -> tuple[Decimal, int]:
        """(money, quota) of `amount` USD; InvalidArgument below MinTopUp."""
        if amount <= 0 or amount < self.min_top_up:
            raise InvalidArgument(
                f"the top-up amount must be at least {max(self.min_top_up, 1)}",
                code="invalid_topup_amount",
            )
        money = Decimal(amount) * Decimal(str(self.price)) * Decimal(str(self.group_ratio))
        money = money.quantize(CENT, rounding=ROUND_HALF_UP)
        if money < CENT:
            raise InvalidArgument("the payment amount is too small", code="invalid_topup_amount")
        return money, amount * self.quota_per_unit


@dataclass(frozen=True, slots=True)
class Order:
    trade_no: str
    url: str
    params: dict[str, str]
    money: Decimal


def _epay(table: PricingTable) -> EpayConfig:
    values = table.values
    return EpayConfig(
        address=str(values["PayAddress"]), pid=str(values["EpayId"]), key=str(values["EpayKey"])
    )


def _pricing(table: PricingTable, group: str) -> Pricing:
    ratios: dict[str, float] = table.values["TopupGroupRatio"]
    return Pricing(
        price=float(table.values["Price"]),
        min_top_up=table.number("MinTopUp"),
        group_ratio=float(ratios.get(group or "default", 1.0)),
        quota_per_unit=table.number("QuotaPerUnit"),
    )


def quote(billing: Billing, *, amount: int, group: str) -> tuple[Decimal, int]:
    """(money to pay, quota credited) for `amount` USD in the user's group."""
    return _pricing(billing.prices.table, group).quote(amount)


async def create(
    billing: Billing,
    *,
    user_id: int,
    inviter_id: int,
    amount: int,
    method: str,
    notify_url: str,
    return_url: str,
    group: str,
) -> Order:
    """A pending order and the signed parameters of the payment page."""
    table = billing.prices.table
    pricing, epay = _pricing(table, group), _epay(table)
    epay.check()
    if not method.strip():
        raise InvalidArgument("payment_method is required")
    money, quota = pricing.quote(amount)
    trade_no = f"USR{user_id}NO{secrets.token_hex(3)}{int(time.time())}"
    params = {
        "pid": epay.pid,
        "type": method.strip(),
        "out_trade_no": trade_no,
        "notify_url": notify_url,
        "return_url": return_url,
        "name": f"TUC{amount}",
        "money": f"{money:.2f}",
    }
    params["sign"] = sign(params, epay.key)
    params["sign_type"] = "MD5"
    async with billing.pool.acquire() as conn:
        await orders.insert(
            conn,
            user_id=user_id,
            inviter_id=inviter_id,
            amount=amount,
            quota=quota,
            money=money,
            method=method.strip(),
            trade_no=trade_no,
        )
    return Order(trade_no, epay.address.rstrip("/") + "/submit.php", params, money)


@dataclass(frozen=True, slots=True)
class Completion:
    trade_no: str
    user_id: int
    quota: int
    already_completed: bool
    rebate: int


def verify(params: dict[str, str], epay: EpayConfig) -> str:
    """The order's trade number when the callback is authentic and successful."""
    epay.check()
    given = params.get("sign", "")
    if not given or not hmac.compare_digest(given.lower(), sign(params, epay.key)):
        raise PermissionDenied("the EPay signature is not valid", code="invalid_signature")
    if params.get("pid", "") != epay.pid:
        raise PermissionDenied("the EPay merchant id does not match", code="invalid_signature")
    if params.get("trade_status") != "TRADE_SUCCESS":
        raise FailedPrecondition("the payment did not succeed", code="trade_not_success")
    trade_no = params.get("out_trade_no", "")
    if not trade_no:
        raise InvalidArgument("out_trade_no is missing")
    return trade_no


async def complete(billing: Billing, *, params: dict[str, str]) -> Completion:
    """Apply a verified payment notify once, with the inviter's rebate when it is on."""
    table = billing.prices.table
    percent = float(table.values["RebatePercentage"]) if table.flag("RebateEnabled") else 0.0
    epay = _epay(table)
    async with billing.pool.acquire() as conn, conn.transaction():
        return await _complete(conn, params=params, epay=epay, rebate_percent=percent)


async def _complete(
    conn: Connection, *, params: dict[str, str], epay: EpayConfig, rebate_percent: float
) -> Completion:
    trade_no = verify(params, epay)
    row = await orders.lock(conn, trade_no=trade_no)
    if row is None:
        raise NotFound(f"no top-up order {trade_no}", code="topup_not_found")
    user_id, quota = row.user_id, row.quota
    if row.status == "success":
        return Completion(trade_no, user_id, quota, True, 0)
    try:
        paid = Decimal(params.get("money", "")).quantize(CENT)
    except InvalidOperation as exc:
        raise InvalidArgument("money is not a number") from exc
    if paid != row.money:
        raise FailedPrecondition("the paid amount does not match the order", code="money_mismatch")
    await adjust.adjust(
        conn,
        change=adjust.Adjustment.credit(
            key=f"topup:{trade_no}",
            user_id=user_id,
            quota=quota,
            kind="topup",
            reason=f"EPay order {trade_no}",
            log_content=f"使用在线充值成功，充值金额: {row.amount} USD，支付金额：{paid}",
        ),
    )
    rebate = await _rebate(conn, row.inviter_id, quota, rebate_percent, trade_no)
    await orders.finish(conn, trade_no=trade_no, upstream_trade_no=params.get("trade_no", ""))
    return Completion(trade_no, user_id, quota, False, rebate)


async def _rebate(
    conn: Connection, inviter_id: int, quota: int, percent: float, trade_no: str
) -> int:
    if inviter_id <= 0 or percent <= 0:
        return 0
    rebate = int(Decimal(quota) * Decimal(str(percent)) / 100)
    if rebate <= 0:
        return 0
    await adjust.adjust(
        conn,
        change=adjust.Adjustment.credit(
            key=f"rebate:{trade_no}",
            user_id=inviter_id,
            quota=rebate,
            kind="invite",
            reason=f"rebate for order {trade_no}",
            log_content=f"邀请用户充值返利 {rebate}（{percent:g}%）",
        ),
    )
    return rebate
