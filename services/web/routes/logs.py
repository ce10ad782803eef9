"""Consumption logs from billing: every user's for admins, one's own for users."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from veloera.billing.v1 import billing_pb2

from services.web.api import ROLE_ADMIN, ROLE_COMMON, Call, endpoint
from services.web.convert import log_item, paged


async def _list(call: Call, *, user_id: int, admin_view: bool) -> dict[str, Any]:
    params = call.request.query_params
    page, size = call.page()
    reply = await call.deps.billing.ListLogs(
        billing_pb2.ListLogsRequest(
            user_id=user_id,
            page=page,
            page_size=size,
            type=call.query_int("type"),  # type: ignore[arg-type]
            start_timestamp=call.query_int("start_timestamp"),
            end_timestamp=call.query_int("end_timestamp"),
            username=params.get("username", "") if admin_view else "",
            token_name=params.get("token_name", ""),
            model_name=params.get("model_name", ""),
            channel_id=call.query_int("channel") if admin_view else 0,
            group=params.get("group", ""),
            admin_view=admin_view,
        ),
        timeout=call.deps.timeout,
    )
    # Users see which channel served them (the foundation issue asks for it); the channels
    # tried along the way stay admin-only inside `other.admin_info`.
    items = [log_item(entry) for entry in reply.items]
    return paged(items, reply.total, page, size)


@endpoint(ROLE_ADMIN)
async def all_logs(call: Call) -> dict[str, Any]:
    return await _list(call, user_id=0, admin_view=True)


@endpoint(ROLE_COMMON)
async def own_logs(call: Call) -> dict[str, Any]:
    return await _list(call, user_id=call.user_id, admin_view=False)


ROUTES = [
    Route("/api/log/", all_logs, methods=["GET"]),
    Route("/api/log/self", own_logs, methods=["GET"]),
]
