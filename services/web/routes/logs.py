"""Consumption logs from billing: every user's for admins, one's own for users; stats over a
filter, keyset pagination (`cursor`) next to `p`, and admin deletion of old history."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Route
from veloera.billing.v1 import billing_pb2

from services.web.api import (
    INT64_MAX,
    ROLE_ADMIN,
    ROLE_COMMON,
    ApiError,
    Call,
    bad_request,
    endpoint,
)
from services.web.convert import log_item, paged

# `<microseconds>.<log id>` as billing's logs.encode_cursor writes it (bounded: 16 + 19 digits).
_CURSOR = re.compile(r"\d{1,16}\.\d{1,19}")
# The last unix second billing's log filters accept (end of year 9999, as far as timestamps go).
_LAST_TIMESTAMP = 253_402_214_400


def _cursor(raw: str) -> str:
    cursor = raw.strip()
    if cursor and (_CURSOR.fullmatch(cursor) is None or int(cursor.split(".")[1]) > INT64_MAX):
        raise bad_request("cursor is not valid")
    return cursor


def _request(call: Call, *, user_id: int, admin_view: bool) -> billing_pb2.ListLogsRequest:
    params = call.request.query_params
    page, size = call.page()
    log_type = call.query_int("type")
    if not 0 <= log_type <= 6:
        raise ApiError("type must be between 0 and 6")
    return billing_pb2.ListLogsRequest(
        user_id=user_id,
        page=page,
        page_size=size,
        type=log_type,  # type: ignore[arg-type]
        start_time=call.query_int("start_timestamp", minimum=0, maximum=_LAST_TIMESTAMP),
        end_time=call.query_int("end_timestamp", minimum=0, maximum=_LAST_TIMESTAMP),
        username=params.get("username", "") if admin_view else "",
        token_name=params.get("token_name", ""),
        model_name=params.get("model_name", ""),
        channel_id=call.query_int("channel") if admin_view else 0,
        group=params.get("group", ""),
        admin_view=admin_view,
        cursor=_cursor(params.get("cursor", "")),
        skip_total=params.get("skip_total", "") in {"1", "true"},
    )


async def _list(call: Call, *, user_id: int, admin_view: bool) -> dict[str, Any]:
    request = _request(call, user_id=user_id, admin_view=admin_view)
    reply = await call.deps.billing.ListLogs(request, timeout=call.deps.timeout)
    # Users see which channel served them (the foundation issue asks for it); the channels
    # tried along the way stay admin-only inside `other.admin_info`.
    items = [log_item(entry) for entry in reply.items]
    result = paged(items, reply.total, request.page, request.page_size)
    result["next_cursor"] = reply.next_cursor
    # The total stopped counting at a bound (two filters together over a big table): the
    # console shows it as "10,000+".
    result["total_capped"] = reply.total_capped
    return result


async def _stat(call: Call, *, user_id: int, admin_view: bool) -> dict[str, Any]:
    request = _request(call, user_id=user_id, admin_view=admin_view)
    query = billing_pb2.GetLogStatRequest(query=request)
    reply = await call.deps.billing.GetLogStat(query, timeout=call.deps.timeout)
    return {
        "quota": reply.quota,
        "rpm": round(reply.rpm, 3),
        "tpm": round(reply.tpm, 3),
        "count": reply.count,
        "window_seconds": reply.window_ms // 1000,
    }


@endpoint(ROLE_ADMIN)
async def all_logs(call: Call) -> dict[str, Any]:
    return await _list(call, user_id=0, admin_view=True)


@endpoint(ROLE_COMMON)
async def own_logs(call: Call) -> dict[str, Any]:
    return await _list(call, user_id=call.user_id, admin_view=False)


@endpoint(ROLE_ADMIN)
async def all_stat(call: Call) -> dict[str, Any]:
    return await _stat(call, user_id=0, admin_view=True)


@endpoint(ROLE_COMMON)
async def own_stat(call: Call) -> dict[str, Any]:
    return await _stat(call, user_id=call.user_id, admin_view=False)


@endpoint(ROLE_ADMIN)
async def delete_history(call: Call) -> int:
    """`DELETE /api/log/?target_timestamp=`: every row created before it; returns the count."""
    before = call.query_int("target_timestamp")
    if before <= 0:
        raise ApiError("target timestamp is required")
    reply = await call.deps.billing.DeleteLogs(
        billing_pb2.DeleteLogsRequest(before_time=before), timeout=call.deps.timeout * 6
    )
    return int(reply.deleted)


ROUTES = [
    Route("/api/log/", all_logs, methods=["GET"]),
    Route("/api/log/", delete_history, methods=["DELETE"]),
    Route("/api/log/self", own_logs, methods=["GET"]),
    Route("/api/log/stat", all_stat, methods=["GET"]),
    Route("/api/log/self/stat", own_stat, methods=["GET"]),
]
