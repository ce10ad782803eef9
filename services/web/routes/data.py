"""Usage data for the dashboard (upstream `model/usedata.go`): hourly rollups per user and model."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from veloera.billing.v1 import billing_pb2

from services.web.api import ROLE_ADMIN, ROLE_COMMON, Call, endpoint


async def _data(call: Call, *, user_id: int, username: str) -> list[dict[str, Any]]:
    reply = await call.deps.billing.GetQuotaData(
        billing_pb2.GetQuotaDataRequest(
            user_id=user_id,
            username=username,
            start_time=call.query_int("start_timestamp"),
            end_time=call.query_int("end_timestamp"),
            granularity=call.request.query_params.get("granularity", "hour"),
        ),
        timeout=call.deps.timeout,
    )
    return [
        {
            "user_id": p.user_id,
            "username": p.username,
            "model_name": p.model_name,
            "created_at": p.created_time,
            "token_used": p.token_used,
            "count": p.count,
            "quota": p.quota,
        }
        for p in reply.items
    ]


@endpoint(ROLE_ADMIN)
async def all_data(call: Call) -> list[dict[str, Any]]:
    return await _data(call, user_id=0, username=call.request.query_params.get("username", ""))


@endpoint(ROLE_COMMON)
async def own_data(call: Call) -> list[dict[str, Any]]:
    return await _data(call, user_id=call.user_id, username="")


ROUTES = [
    Route("/api/data/", all_data, methods=["GET"]),
    Route("/api/data/self", own_data, methods=["GET"]),
]
