"""The consumption log row of a settlement, the answer for a request settled before, and the
reaper's settlement of expired holds. Runs inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.billing.store import holds, logs, wallets
from services.billing.store.holds import Hold
from services.shared.db import Connection
from services.shared.errors import DomainError, FailedPrecondition, NotFound
from services.shared.pricing import PriceSnapshot, TokenUsage

EMPTY_REPLY_NOTE = "空回复不计费（可能是上游超时）"
REAPER_NOTE = "请求未结算，已由预扣回收器按预扣额度结算 (settled by the hold reaper)"


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


async def answer_existing(
    conn: Connection, *, request_ids: list[str]
) -> dict[str, SettleResult | DomainError]:
    """For requests the batch did not apply, in one statement: the result of a settlement
    already applied (a repeated request id: idempotent), or the error of a hold that cannot be
    settled (unknown, released, reaped). Locks the holds, so a settlement another transaction
    is applying right now is waited for and answered as applied."""
    found = await holds.lock_with_log(conn, request_ids=sorted(request_ids))
    answers: dict[str, SettleResult | DomainError] = {}
    for request_id in request_ids:
        if request_id not in found:
            answers[request_id] = NotFound(
                f"no hold for request {request_id}", code="hold_not_found"
            )
            continue
        hold, log_id = found[request_id]
        if hold.status != "settled":
            answers[request_id] = FailedPrecondition(
                f"hold {request_id} is already {hold.status}", code=f"hold_{hold.status}"
            )
            continue
        refunded = max(hold.reserved - hold.charged, 0)
        answers[request_id] = SettleResult(hold, hold.charged, refunded, True, log_id)
    return answers


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
    await holds.set_log(conn, request_id=hold.request_id, log_id=log_id)
    return hold
