"""Daily check-in (a Veloera addition to new-api): status and claiming today's reward."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from veloera.billing.v1 import billing_pb2

from services.web.api import ROLE_COMMON, Call, endpoint


@endpoint(ROLE_COMMON)
async def check_in_status(call: Call) -> dict[str, Any]:
    reply = await call.deps.billing.GetCheckInStatus(
        billing_pb2.GetCheckInStatusRequest(user_id=call.user_id), timeout=call.deps.timeout
    )
    return {"can_check_in": reply.can_check_in, "enabled": reply.enabled, "day": reply.day}


@endpoint(ROLE_COMMON)
async def check_in(call: Call) -> dict[str, Any]:
    reply = await call.deps.billing.CheckIn(
        billing_pb2.CheckInRequest(user_id=call.user_id), timeout=call.deps.timeout
    )
    return {"quota": reply.quota, "day": reply.day}


ROUTES = [
    Route("/api/user/check_in_status", check_in_status, methods=["GET"]),
    Route("/api/user/check_in", check_in, methods=["POST"]),
]
