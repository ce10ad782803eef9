"""Redemption and gift codes (upstream `model/redemption.go`): admin management and `POST
/api/user/topup`.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from veloera.billing.v1 import billing_pb2

from services.web.api import ROLE_ADMIN, ROLE_COMMON, ApiError, Call, endpoint, parse_int
from services.web.convert import paged
from services.web.quota_rules import MAX_QUOTA


def redemption_item(code: billing_pb2.Redemption) -> dict[str, Any]:
    return {
        "id": code.id,
        "user_id": code.user_id,
        "key": code.key,
        "status": code.status,
        "name": code.name,
        "quota": code.quota,
        "created_time": code.created_time,
        "redeemed_time": code.redeemed_time,
        "used_user_id": code.used_user_id,
        "valid_from": code.valid_from_time,
        "valid_until": code.valid_until_time,
        "is_gift": code.is_gift,
        "max_uses": code.max_uses,
        "used_count": code.used_count,
    }


async def _list(call: Call, keyword: str) -> dict[str, Any]:
    page, size = call.page()
    reply = await call.deps.billing.ListRedemptions(
        billing_pb2.ListRedemptionsRequest(page=page, page_size=size, keyword=keyword),
        timeout=call.deps.timeout,
    )
    return paged([redemption_item(c) for c in reply.items], reply.total, page, size)


@endpoint(ROLE_ADMIN)
async def list_codes(call: Call) -> dict[str, Any]:
    return await _list(call, "")


@endpoint(ROLE_ADMIN)
async def search_codes(call: Call) -> dict[str, Any]:
    return await _list(call, call.request.query_params.get("keyword", ""))


@endpoint(ROLE_ADMIN)
async def get_code(call: Call) -> dict[str, Any]:
    reply = await call.deps.billing.GetRedemption(
        billing_pb2.GetRedemptionRequest(id=call.path_int("id")), timeout=call.deps.timeout
    )
    return redemption_item(reply)


@endpoint(ROLE_ADMIN)
async def create_codes(call: Call) -> list[str]:
    body = await call.json()
    is_gift = bool(body.get("is_gift", False))
    reply = await call.deps.billing.CreateRedemptions(
        billing_pb2.CreateRedemptionsRequest(
            actor_id=call.user_id,
            name=str(body.get("name") or ""),
            quota=call.body_int(body, "quota", maximum=MAX_QUOTA),
            count=call.body_int(body, "count", 1),
            key=str(body.get("key") or ""),
            is_gift=is_gift,
            max_uses=call.body_int(body, "max_uses", -1 if is_gift else 1),
            valid_from_time=call.body_int(body, "valid_from"),
            valid_until_time=call.body_int(body, "valid_until"),
        ),
        timeout=call.deps.timeout,
    )
    return list(reply.keys)


@endpoint(ROLE_ADMIN)
async def update_code(call: Call) -> dict[str, Any]:
    body = await call.json()
    code_id = call.body_int(body, "id")
    if code_id <= 0:
        raise ApiError("id is required")
    status_only = call.request.query_params.get("status_only", "") in {"1", "true"}
    current = await call.deps.billing.GetRedemption(
        billing_pb2.GetRedemptionRequest(id=code_id), timeout=call.deps.timeout
    )
    code = billing_pb2.Redemption(
        id=code_id,
        name=str(body.get("name", current.name)),
        quota=call.body_int(body, "quota", current.quota, maximum=MAX_QUOTA),
        valid_from_time=call.body_int(body, "valid_from", current.valid_from_time),
        valid_until_time=call.body_int(body, "valid_until", current.valid_until_time),
        max_uses=call.body_int(body, "max_uses", current.max_uses),
        status=call.body_int(body, "status", current.status),
    )
    reply = await call.deps.billing.UpdateRedemption(
        billing_pb2.UpdateRedemptionRequest(redemption=code, status_only=status_only),
        timeout=call.deps.timeout,
    )
    return redemption_item(reply)


@endpoint(ROLE_ADMIN)
async def delete_code(call: Call) -> None:
    reply = await call.deps.billing.DeleteRedemption(
        billing_pb2.DeleteRedemptionRequest(id=call.path_int("id")), timeout=call.deps.timeout
    )
    if reply.deleted == 0:
        raise ApiError("redemption code not found")


@endpoint(ROLE_ADMIN)
async def delete_invalid(call: Call) -> int:
    reply = await call.deps.billing.DeleteRedemption(
        billing_pb2.DeleteRedemptionRequest(invalid_only=True), timeout=call.deps.timeout
    )
    return int(reply.deleted)


def _name(call: Call, body: dict[str, Any] | None = None) -> str:
    name = str((body or {}).get("name") or call.request.query_params.get("name", "")).strip()
    if not name:
        raise ApiError("name is required")
    return name


@endpoint(ROLE_ADMIN)
async def count_by_name(call: Call) -> int:
    """GET /api/redemption/count-by-name?name= : how many codes a delete by name would take."""
    reply = await call.deps.billing.ListRedemptions(
        billing_pb2.ListRedemptionsRequest(name=_name(call), page=1, page_size=1),
        timeout=call.deps.timeout,
    )
    return int(reply.total)


@endpoint(ROLE_ADMIN)
async def delete_by_name(call: Call) -> int:
    """DELETE (or POST) /api/redemption/delete-by-name, the name in the query or the body."""
    body = await call.json() if call.request.method == "POST" else None
    reply = await call.deps.billing.DeleteRedemption(
        billing_pb2.DeleteRedemptionRequest(name=_name(call, body)), timeout=call.deps.timeout
    )
    return int(reply.deleted)


@endpoint(ROLE_ADMIN)
async def delete_disabled(call: Call) -> int:
    reply = await call.deps.billing.DeleteRedemption(
        billing_pb2.DeleteRedemptionRequest(disabled_only=True), timeout=call.deps.timeout
    )
    return int(reply.deleted)


@endpoint(ROLE_ADMIN)
async def batch_disable(call: Call) -> int:
    """POST /api/redemption/batch-disable `{ids}`: the unused ones among them are disabled."""
    body = await call.json()
    raw = body.get("ids")
    if not isinstance(raw, list):
        raise ApiError("ids must be a list of code ids")
    ids = [parse_int(value, "ids", minimum=1) for value in raw]
    reply = await call.deps.billing.DisableRedemptions(
        billing_pb2.DisableRedemptionsRequest(ids=ids), timeout=call.deps.timeout
    )
    return int(reply.disabled)


@endpoint(ROLE_COMMON)
async def top_up(call: Call) -> int:
    """Redeem a code for the caller; returns the quota credited."""
    body = await call.json()
    key = str(body.get("key") or "").strip()
    if not key:
        raise ApiError("please enter a redemption code")
    reply = await call.deps.billing.Redeem(
        billing_pb2.RedeemRequest(key=key, user_id=call.user_id), timeout=call.deps.timeout
    )
    return int(reply.quota)


ROUTES = [
    Route("/api/redemption/", list_codes, methods=["GET"]),
    Route("/api/redemption/search", search_codes, methods=["GET"]),
    Route("/api/redemption/", create_codes, methods=["POST"]),
    Route("/api/redemption/", update_code, methods=["PUT"]),
    Route("/api/redemption/invalid", delete_invalid, methods=["DELETE"]),
    Route("/api/redemption/count-by-name", count_by_name, methods=["GET"]),
    Route("/api/redemption/delete-by-name", delete_by_name, methods=["DELETE", "POST"]),
    Route("/api/redemption/delete-disabled", delete_disabled, methods=["DELETE"]),
    Route("/api/redemption/batch-disable", batch_disable, methods=["POST"]),
    Route("/api/redemption/{id:int}", get_code, methods=["GET"]),
    Route("/api/redemption/{id:int}", delete_code, methods=["DELETE"]),
    Route("/api/user/topup", top_up, methods=["POST"]),
]
