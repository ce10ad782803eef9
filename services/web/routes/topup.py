"""Online top-up through EPay (upstream `controller/topup.go`) and the inviter's reward transfer
(upstream `controller/user.go`).
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from veloera.billing.v1 import billing_pb2

from services.web.api import ROLE_COMMON, ApiError, Call, JSONResponse, endpoint
from services.web.deps import Deps
from services.web.metrics import RPC_ERRORS
from services.web.quota_rules import MAX_QUOTA

logger = logging.getLogger(__name__)

NOTIFY_PATH = "/api/user/epay/notify"


def _amount(call: Call, body: dict[str, Any]) -> int:
    amount = call.body_int(body, "amount")
    if amount <= 0:
        raise ApiError("the top-up amount must be a positive integer")
    return amount


@endpoint(ROLE_COMMON)
async def quote(call: Call) -> str:
    body = await call.json()
    reply = await call.deps.billing.QuoteTopUp(
        billing_pb2.QuoteTopUpRequest(
            user_id=call.user_id, amount=_amount(call, body), group=call.user.group or "default"
        ),
        timeout=call.deps.timeout,
    )
    return f"{reply.money:.2f}"


@endpoint(ROLE_COMMON)
async def pay(call: Call) -> Response:
    body = await call.json()
    base = str(call.request.base_url).rstrip("/")
    reply = await call.deps.billing.CreateTopUp(
        billing_pb2.CreateTopUpRequest(
            user_id=call.user_id,
            amount=_amount(call, body),
            group=call.user.group or "default",
            payment_method=str(body.get("payment_method") or ""),
            notify_url=base + NOTIFY_PATH,
            return_url=base + "/log",
            inviter_id=call.user.inviter_id,
        ),
        timeout=call.deps.timeout,
    )
    return JSONResponse(
        {"success": True, "message": "success", "data": dict(reply.params), "url": reply.url}
    )


async def epay_notify(request: Request) -> Response:
    """EPay's server-to-server callback: `success` once applied (or already applied)."""
    deps: Deps = request.app.state.deps
    params = {k: v for k, v in request.query_params.items()}
    try:
        reply = await deps.billing.CompleteTopUp(
            billing_pb2.CompleteTopUpRequest(params=params), timeout=deps.timeout
        )
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        RPC_ERRORS.labels(code.name if code else "UNKNOWN").inc()
        logger.warning("EPay notify refused: %s", exc.details())
        return PlainTextResponse("fail")
    if not reply.already_completed:
        logger.info("top-up %s applied for user %d", reply.trade_no, reply.user_id)
    return PlainTextResponse("success")


@endpoint(ROLE_COMMON)
async def aff_transfer(call: Call) -> None:
    body = await call.json()
    quota = call.body_int(body, "quota", maximum=MAX_QUOTA)
    if quota <= 0:
        raise ApiError("quota must be a positive integer")
    await call.deps.billing.TransferAffQuota(
        billing_pb2.TransferAffQuotaRequest(user_id=call.user_id, quota=quota),
        timeout=call.deps.timeout,
    )


ROUTES = [
    Route("/api/user/amount", quote, methods=["POST"]),
    Route("/api/user/pay", pay, methods=["POST"]),
    Route(NOTIFY_PATH, epay_notify, methods=["GET", "POST"]),
    Route("/api/user/aff_transfer", aff_transfer, methods=["POST"]),
]
