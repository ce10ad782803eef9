"""The caller's own API keys: identity and limits in accounts, budgets in billing."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.web.api import ROLE_COMMON, ApiError, Call, endpoint
from services.web.convert import paged, split_list, token_item
from services.web.quota_rules import MAX_QUOTA
from services.web.routes.user_self import group_ratios

logger = logging.getLogger(__name__)

MAX_TOKEN_NAME = 30
_TEXT_FIELDS = ("name", "group")
_INT_FIELDS = ("expired_time",)
_BOOL_FIELDS = ("unlimited_quota", "model_limits_enabled")
# The console's flat rate-limit fields -> the token's RateLimit message (field, scale): the
# console counts the period in seconds, the message in milliseconds.
_RATE_INT_FIELDS = {
    "rate_limit_period": ("period_ms", 1000),
    "rate_limit_count": ("count", 1),
    "rate_limit_success": ("success", 1),
}


def _apply_body(call: Call, token: accounts_pb2.Token, body: dict[str, Any]) -> None:
    for name in _TEXT_FIELDS:
        if body.get(name) is not None:
            setattr(token, name, str(body[name]).strip())
    for name in _INT_FIELDS:
        if body.get(name) is not None:
            setattr(token, name, call.body_int(body, name))
    for name in _BOOL_FIELDS:
        if body.get(name) is not None:
            setattr(token, name, bool(body[name]))
    for name, (field, scale) in _RATE_INT_FIELDS.items():
        if body.get(name) is not None:
            setattr(token.rate_limit, field, call.body_int(body, name) * scale)
    if body.get("rate_limit_enabled") is not None:
        token.rate_limit.enabled = bool(body["rate_limit_enabled"])
    if "status" in body:
        token.status = call.body_int(body, "status")  # type: ignore[assignment]
    if "model_limits" in body:
        token.ClearField("model_limits")
        token.model_limits.extend(split_list(body["model_limits"]))
    if "allow_ips" in body:
        token.ClearField("allow_ips")
        token.allow_ips.extend(split_list(body["allow_ips"], "\n,"))
    if len(token.name) > MAX_TOKEN_NAME:
        raise ApiError(f"the token name must be at most {MAX_TOKEN_NAME} characters")


async def _budgets(call: Call, ids: list[int]) -> dict[int, billing_pb2.TokenBudget]:
    if not ids:
        return {}
    reply = await call.deps.billing.GetTokenBudgets(
        billing_pb2.GetTokenBudgetsRequest(token_ids=ids), timeout=call.deps.timeout
    )
    return {b.token_id: b for b in reply.budgets}


async def _set_budget(
    call: Call, token_id: int, remain_quota: int, unlimited: bool
) -> billing_pb2.TokenBudget:
    return await call.deps.billing.SetTokenBudget(
        billing_pb2.SetTokenBudgetRequest(
            token_id=token_id,
            user_id=call.user_id,
            remain_quota=remain_quota,
            unlimited=unlimited,
        ),
        timeout=call.deps.timeout,
    )


async def _list(call: Call, keyword: str) -> dict[str, Any]:
    page, size = call.page(size_param="size")
    reply = await call.deps.accounts.ListTokens(
        accounts_pb2.ListTokensRequest(
            user_id=call.user_id, page=page, page_size=size, keyword=keyword
        ),
        timeout=call.deps.timeout,
    )
    budgets = await _budgets(call, [t.id for t in reply.tokens])
    items = [token_item(t, budgets.get(t.id)) for t in reply.tokens]
    return paged(items, reply.total, page, size)


@endpoint(ROLE_COMMON)
async def list_tokens(call: Call) -> dict[str, Any]:
    return await _list(call, "")


@endpoint(ROLE_COMMON)
async def search_tokens(call: Call) -> dict[str, Any]:
    params = call.request.query_params
    keyword = params.get("keyword", "") or params.get("token", "").removeprefix("sk-")
    return await _list(call, keyword)


async def _own_token(call: Call, token_id: int) -> accounts_pb2.Token:
    return await call.deps.accounts.GetToken(
        accounts_pb2.GetTokenRequest(user_id=call.user_id, id=token_id),
        timeout=call.deps.timeout,
    )


@endpoint(ROLE_COMMON)
async def get_token(call: Call) -> dict[str, Any]:
    token = await _own_token(call, call.path_int("id"))
    budgets = await _budgets(call, [token.id])
    return token_item(token, budgets.get(token.id))


@endpoint(ROLE_COMMON)
async def create_token(call: Call) -> dict[str, Any]:
    body = await call.json()
    token = accounts_pb2.Token(expired_time=-1, status=accounts_pb2.TOKEN_STATUS_ENABLED)
    _apply_body(call, token, body)
    token.status = accounts_pb2.TOKEN_STATUS_ENABLED
    await _check_group_priced(call, token.group)
    remain_quota = call.body_int(body, "remain_quota", maximum=MAX_QUOTA)
    if remain_quota < 0:
        raise ApiError("remain_quota must not be negative")
    created = await call.deps.accounts.CreateToken(
        accounts_pb2.CreateTokenRequest(user_id=call.user_id, token=token),
        timeout=call.deps.timeout,
    )
    try:
        budget = await _set_budget(call, created.id, remain_quota, token.unlimited_quota)
    except BaseException:
        # Without a budget the key could never be used: undo the half-created token, whatever
        # stopped the budget step (an error, a timeout, the client going away).
        await asyncio.shield(_undo_created(call, created.id))
        raise
    return token_item(created, budget)


async def _undo_created(call: Call, token_id: int) -> None:
    logger.warning("token budget failed; deleting token %d", token_id)
    try:
        await call.deps.accounts.DeleteTokens(
            accounts_pb2.DeleteTokensRequest(user_id=call.user_id, ids=[token_id]),
            timeout=call.deps.timeout,
        )
    except grpc.aio.AioRpcError as exc:
        logger.error("cannot delete half-created token %d: %s", token_id, exc.code())


def _check_enable(
    old: accounts_pb2.Token, new: accounts_pb2.Token, budget: billing_pb2.TokenBudget | None
) -> None:
    """A token that expired or ran out cannot be re-enabled until that is fixed."""
    if new.status != accounts_pb2.TOKEN_STATUS_ENABLED or old.status == new.status:
        return
    if new.expired_time != -1 and 0 < new.expired_time < time.time():
        raise ApiError("the token has expired and cannot be enabled; change its expiry first")
    if budget is not None and not budget.unlimited and budget.remain_quota <= 0:
        raise ApiError(
            "the token's quota is used up and it cannot be enabled; "
            "raise its remaining quota or make it unlimited first"
        )


@endpoint(ROLE_COMMON)
async def update_token(call: Call) -> dict[str, Any]:
    body = await call.json()
    status_only = call.request.query_params.get("status_only", "") not in {"", "0", "false"}
    old = await _own_token(call, call.body_int(body, "id"))
    new = accounts_pb2.Token()
    new.CopyFrom(old)
    if status_only:
        new.status = call.body_int(body, "status")  # type: ignore[assignment]
    else:
        _apply_body(call, new, body)
        if new.group != old.group:
            await _check_group_priced(call, new.group)
    budget = (await _budgets(call, [old.id])).get(old.id)
    wants_budget = not status_only and ("remain_quota" in body or "unlimited_quota" in body)
    if wants_budget:
        remain = call.body_int(
            body, "remain_quota", budget.remain_quota if budget else 0, maximum=MAX_QUOTA
        )
        if remain < 0:
            raise ApiError("remain_quota must not be negative")
        budget = billing_pb2.TokenBudget(
            token_id=old.id, remain_quota=remain, unlimited=new.unlimited_quota
        )
    _check_enable(old, new, budget)
    updated = await call.deps.accounts.UpdateToken(
        accounts_pb2.UpdateTokenRequest(user_id=call.user_id, token=new, status_only=status_only),
        timeout=call.deps.timeout,
    )
    if wants_budget and budget is not None:
        budget = await _set_budget(call, old.id, budget.remain_quota, budget.unlimited)
    return token_item(updated, budget)


async def _check_group_priced(call: Call, group: str) -> None:
    """A token's group override must have a GroupRatio (usability is checked by accounts)."""
    if group and group not in await group_ratios(call):
        raise ApiError(f"group {group} has no price ratio (GroupRatio) and cannot be used")


@endpoint(ROLE_COMMON)
async def batch_delete_tokens(call: Call) -> int:
    body = await call.json()
    raw = body.get("ids")
    if not isinstance(raw, list) or not raw:
        raise ApiError("ids must be a non-empty list of token ids")
    ids = [call.body_int({"id": value}, "id") for value in raw]
    reply = await call.deps.accounts.DeleteTokens(
        accounts_pb2.DeleteTokensRequest(user_id=call.user_id, ids=ids),
        timeout=call.deps.timeout,
    )
    if reply.ids:
        await call.deps.billing.DeleteTokenBudgets(
            billing_pb2.DeleteTokenBudgetsRequest(token_ids=list(reply.ids)),
            timeout=call.deps.timeout,
        )
    return reply.deleted


@endpoint(ROLE_COMMON)
async def delete_token(call: Call) -> None:
    token_id = call.path_int("id")
    reply = await call.deps.accounts.DeleteTokens(
        accounts_pb2.DeleteTokensRequest(user_id=call.user_id, ids=[token_id]),
        timeout=call.deps.timeout,
    )
    if reply.deleted == 0:
        raise ApiError("token not found")
    await call.deps.billing.DeleteTokenBudgets(
        billing_pb2.DeleteTokenBudgetsRequest(token_ids=[token_id]), timeout=call.deps.timeout
    )


ROUTES = [
    Route("/api/token/", list_tokens, methods=["GET"]),
    Route("/api/token/search", search_tokens, methods=["GET"]),
    Route("/api/token/batch", batch_delete_tokens, methods=["POST"]),
    Route("/api/token/", create_token, methods=["POST"]),
    Route("/api/token/", update_token, methods=["PUT"]),
    Route("/api/token/{id:int}", get_token, methods=["GET"]),
    Route("/api/token/{id:int}", delete_token, methods=["DELETE"]),
]
