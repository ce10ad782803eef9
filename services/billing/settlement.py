"""Settle a hold into the final charge (reference §4.4), and the reaper's settlement of expired
holds. Runs inside the caller's transaction; balances never go below zero."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.billing import holds, ledger, logs, usage_data, wallets
from services.billing.accounting import lock_hold, refund, settle_key
from services.billing.holds import Hold
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition
from services.shared.pricing import PriceSnapshot, TokenUsage, settle_amount

EMPTY_REPLY_NOTE = "空回复不计费（可能是上游超时）"
REAPER_NOTE = "请求未结算，已由预扣回收器按预扣额度结算 (settled by the hold reaper)"
SELECT_CONSUME_LOG = "SELECT log_id FROM holds WHERE request_id = $1"
SET_HOLD_LOG = "UPDATE holds SET log_id = $2 WHERE request_id = $1"


@dataclass(frozen=True, slots=True)
class SettleInput:
    request_id: str
    usage: TokenUsage
    username: str = ""
    token_name: str = ""
    model_name: str = ""
    upstream_model: str = ""
    channel_id: int = 0
    channel_name: str = ""
    is_stream: bool = False
    elapsed_ms: int = 0
    first_response_ms: int = 0
    channels_tried: list[int] = field(default_factory=list)
    client_ip: str = ""
    other: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    estimated: bool = False
    quota_warning_threshold: int = 0
    lease_id: str = ""  # lease mode: the relay held `lease_reserved` against this lease
    lease_reserved: int = 0


@dataclass(frozen=True, slots=True)
class SettleResult:
    hold: Hold
    charged: int
    refunded: int
    already_settled: bool
    log_id: int


def describe_price(price: PriceSnapshot) -> str:
    """The upstream log content, with ratios shown as stored (0.075 stays 0.075, not 0.07)."""
    if price.per_call:
        return f"模型价格 {price.model_price:g}，分组倍率 {price.group_ratio:g}"
    return (
        f"模型倍率 {price.model_ratio:g}，补全倍率 {price.completion_ratio:g}，"
        f"分组倍率 {price.group_ratio:g}"
    )


def price_details(price: PriceSnapshot) -> dict[str, Any]:
    return {
        "model_ratio": price.model_ratio,
        "group_ratio": price.group_ratio,
        "completion_ratio": price.completion_ratio,
        "cache_ratio": price.cache_ratio,
        "model_price": price.model_price if price.per_call else -1,
    }


async def settle(conn: Connection, *, spec: SettleInput) -> SettleResult:
    hold = await lock_hold(conn, request_id=spec.request_id)
    if hold.status == "settled":
        log_id = await conn.fetchval(SELECT_CONSUME_LOG, spec.request_id)
        refunded = max(hold.reserved - hold.charged, 0)
        return SettleResult(hold, hold.charged, refunded, True, int(log_id or 0))
    if hold.status != "open":
        raise FailedPrecondition(
            f"hold {spec.request_id} is already {hold.status}", code=f"hold_{hold.status}"
        )
    final = settle_amount(hold.price, spec.usage)
    # Lock order hold -> token budget -> wallet, the same as Reserve, so the two never deadlock.
    token_uncollected = await _apply_token_delta(conn, hold=hold, final=final)
    uncollected = await _apply_user_delta(conn, hold=hold, final=final)
    charged = final - uncollected
    if charged > 0:
        await wallets.record_use(conn, user_id=hold.user_id, quota=charged)
    await holds.finish(conn, request_id=hold.request_id, status="settled", charged=charged)
    row = consume_log(hold, spec, charged=charged)
    if uncollected or token_uncollected:
        row.other["uncollected"] = uncollected
        row.other["uncollected_token"] = token_uncollected
    log_id = await logs.insert(conn, row=row)
    await conn.execute(SET_HOLD_LOG, hold.request_id, log_id)
    if not spec.usage.is_empty:
        await usage_data.record(
            conn,
            user_id=hold.user_id,
            username=spec.username,
            model_name=row.model_name,
            tokens=spec.usage.prompt_tokens + spec.usage.completion_tokens,
            quota=charged,
        )
    return SettleResult(hold, charged, max(hold.reserved - charged, 0), False, log_id)


async def _apply_user_delta(conn: Connection, *, hold: Hold, final: int) -> int:
    """Refund or charge the difference to the wallet; returns what could not be collected."""
    delta = final - hold.reserved
    if delta < 0:
        back = -delta
        to_subscription = min(back, hold.reserved_subscription)
        await refund(
            conn,
            hold=hold,
            to_subscription=to_subscription,
            to_quota=back - to_subscription,
            key=settle_key(hold.request_id),
            reason="unused part of the hold",
        )
        return 0
    if delta == 0:
        return 0
    balances = await wallets.lock_wallet(conn, user_id=hold.user_id)
    if balances is None:
        return delta
    take = min(delta, balances.total)
    if take <= 0:
        return delta
    from_subscription, from_quota = wallets.split_debit(balances, take)
    after = await wallets.debit_wallet(
        conn, user_id=hold.user_id, from_subscription=from_subscription, from_quota=from_quota
    )
    assert after is not None  # the wallet row is locked and covers `take`
    await ledger.append(
        conn,
        user_id=hold.user_id,
        idempotency_key=settle_key(hold.request_id),
        kind="charge",
        delta_quota=-from_quota,
        delta_subscription=-from_subscription,
        balance_after=after.quota,
        subscription_after=after.subscription,
        request_id=hold.request_id,
        reason="usage above the hold",
    )
    return delta - take


async def _apply_token_delta(conn: Connection, *, hold: Hold, final: int) -> int:
    """Same for the token budget (limited tokens only); returns the uncollected part."""
    if hold.token_id <= 0:
        return 0
    state = await wallets.lock_budget(conn, token_id=hold.token_id)
    if state is None:
        return 0  # the token was deleted meanwhile
    await wallets.record_budget_use(conn, token_id=hold.token_id, quota=final)
    if state.unlimited:
        return 0
    delta = final - hold.reserved_token
    if delta < 0:
        await wallets.credit_budget(conn, token_id=hold.token_id, amount=-delta)
        return 0
    take = min(delta, max(state.remain_quota, 0))
    if take > 0:
        await wallets.debit_budget(conn, token_id=hold.token_id, amount=take)
    return delta - take


def consume_log(hold: Hold, spec: SettleInput, *, charged: int) -> logs.LogRow:
    price = hold.price
    model_name = spec.model_name or hold.model
    other: dict[str, Any] = {
        **price_details(price),
        "cache_tokens": spec.usage.cached_tokens,
        "frt": spec.first_response_ms,
        "estimated": spec.estimated,
        "admin_info": {"use_channel": list(spec.channels_tried)},
    }
    if spec.usage.cache_creation_tokens:
        other["cache_creation_tokens"] = spec.usage.cache_creation_tokens
        other["cache_creation_ratio"] = price.cache_creation_ratio
    if spec.upstream_model and spec.upstream_model != model_name:
        other["is_model_mapped"] = True
        other["upstream_model_name"] = spec.upstream_model
    if spec.interrupted:
        other["interrupted"] = True
    extra = dict(spec.other)
    admin_extra = extra.pop("admin_info", None)
    other.update(extra)
    if isinstance(admin_extra, dict):
        other["admin_info"] = {**other["admin_info"], **admin_extra}
    content = describe_price(price)
    if spec.usage.is_empty:
        content = f"{content}，{EMPTY_REPLY_NOTE}"
    return logs.LogRow(
        user_id=hold.user_id,
        type=logs.TYPE_CONSUME,
        content=content,
        username=spec.username,
        token_name=spec.token_name,
        model_name=model_name,
        quota=charged,
        prompt_tokens=spec.usage.prompt_tokens,
        completion_tokens=spec.usage.completion_tokens,
        use_time=spec.elapsed_ms // 1000,
        is_stream=spec.is_stream,
        channel_id=spec.channel_id,
        channel_name=spec.channel_name,
        token_id=hold.token_id,
        group=hold.group,
        other=other,
        client_ip=spec.client_ip,
        request_id=hold.request_id,
        elapsed_ms=spec.elapsed_ms,
    )


async def reap_one(conn: Connection) -> Hold | None:
    """Settle one expired open hold at its reserved amount; None when there is none left.

    The hold already took the money, so no balance changes: only usage counters, the hold's
    status and a log row saying the reaper settled it.
    """
    hold = await holds.lock_one_expired(conn)
    if hold is None:
        return None
    if hold.token_id > 0:
        await wallets.record_budget_use(conn, token_id=hold.token_id, quota=hold.reserved)
    if hold.reserved > 0:
        await wallets.record_use(conn, user_id=hold.user_id, quota=hold.reserved)
    await holds.finish(conn, request_id=hold.request_id, status="expired", charged=hold.reserved)
    other = {**price_details(hold.price), "reaped": True, "admin_info": {"use_channel": []}}
    log_id = await logs.insert(
        conn,
        row=logs.LogRow(
            user_id=hold.user_id,
            type=logs.TYPE_CONSUME,
            content=f"{describe_price(hold.price)}，{REAPER_NOTE}",
            model_name=hold.model,
            quota=hold.reserved,
            token_id=hold.token_id,
            group=hold.group,
            other=other,
            request_id=hold.request_id,
        ),
    )
    await conn.execute(SET_HOLD_LOG, hold.request_id, log_id)
    return hold
