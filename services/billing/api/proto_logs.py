"""Conversions of the log RPCs: filters, rows, pages, stats, channel and hourly usage."""

from __future__ import annotations

from datetime import datetime

import orjson
from veloera.billing.v1 import billing_pb2

from services.billing.api.proto import other_json
from services.billing.store.logs import LogFilter, LogRow, Page, Stat
from services.billing.store.usage_data import UsagePoint
from services.shared.errors import InvalidArgument


def log_filter(request: billing_pb2.ListLogsRequest) -> LogFilter:
    if request.start_time < 0 or request.end_time < 0:
        raise InvalidArgument("timestamps must not be negative")
    return LogFilter(
        user_id=request.user_id,
        type=int(request.type),
        start_timestamp=request.start_time,
        end_timestamp=request.end_time,
        username=request.username,
        token_name=request.token_name,
        model_name=request.model_name,
        channel_id=request.channel_id,
        group=request.group,
    )


def log_pb(row: LogRow, *, admin_view: bool) -> billing_pb2.LogEntry:
    other = dict(row.other)
    if not admin_view:
        other.pop("admin_info", None)
    return billing_pb2.LogEntry(
        id=row.id,
        user_id=row.user_id,
        created_time=int(row.created_at.timestamp()) if row.created_at else 0,
        type=row.type,  # type: ignore[arg-type]
        content=row.content,
        username=row.username,
        token_name=row.token_name,
        model_name=row.model_name,
        quota=row.quota,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        is_stream=row.is_stream,
        channel_id=row.channel_id,
        channel_name=row.channel_name,
        token_id=row.token_id,
        group=row.group,
        other=orjson.dumps(other).decode(),
        client_ip=row.client_ip,
        request_id=row.request_id or "",
        elapsed_ms=row.elapsed_ms or row.use_time * 1000,  # rows imported with seconds only
    )


_FREE_LOG_TYPES = {billing_pb2.LOG_TYPE_ERROR, billing_pb2.LOG_TYPE_SYSTEM}


def free_log_row(entry: billing_pb2.LogEntry) -> LogRow:
    """A WriteLog entry as a row; only types that never go with a balance change."""
    if entry.type not in _FREE_LOG_TYPES:
        raise InvalidArgument("WriteLog accepts only error (6) and system (4) rows")
    if entry.user_id <= 0:
        raise InvalidArgument("user_id must be positive")
    return LogRow(
        user_id=entry.user_id,
        type=int(entry.type),
        content=entry.content,
        username=entry.username,
        token_name=entry.token_name,
        model_name=entry.model_name,
        quota=0,
        prompt_tokens=max(entry.prompt_tokens, 0),
        completion_tokens=max(entry.completion_tokens, 0),
        use_time=max(entry.elapsed_ms, 0) // 1000,
        is_stream=entry.is_stream,
        channel_id=entry.channel_id,
        channel_name=entry.channel_name,
        token_id=entry.token_id,
        group=entry.group,
        other=other_json(entry.other),
        client_ip=entry.client_ip,
        request_id=entry.request_id or None,
        elapsed_ms=max(entry.elapsed_ms, 0),
    )


def page_pb(page: Page, *, admin_view: bool) -> billing_pb2.ListLogsResponse:
    return billing_pb2.ListLogsResponse(
        items=[log_pb(row, admin_view=admin_view) for row in page.rows],
        total=page.total,
        total_capped=page.total_capped,
        next_cursor=page.next_cursor,
    )


def stat_pb(result: Stat) -> billing_pb2.LogStat:
    return billing_pb2.LogStat(
        quota=result.quota,
        rpm=result.rpm,
        tpm=result.tpm,
        count=result.count,
        window_ms=result.window_seconds * 1000,
    )


def channel_usage_pb(found: dict[int, tuple[int, int]]) -> billing_pb2.GetChannelUsageResponse:
    return billing_pb2.GetChannelUsageResponse(
        usage=[
            billing_pb2.ChannelUsage(channel_id=cid, used_quota=used, request_count=count)
            for cid, (used, count) in sorted(found.items())
        ]
    )


def deleted_pb(result: tuple[int, int]) -> billing_pb2.DeleteLogsResponse:
    return billing_pb2.DeleteLogsResponse(deleted=result[0], partitions_dropped=result[1])


def _ts(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def quota_data_pb(points: list[UsagePoint]) -> billing_pb2.QuotaDataResponse:
    return billing_pb2.QuotaDataResponse(
        items=[
            billing_pb2.QuotaDataPoint(
                user_id=p.user_id,
                username=p.username,
                model_name=p.model_name,
                created_time=_ts(p.created_at),
                token_used=p.token_used,
                count=p.count,
                quota=p.quota,
            )
            for p in points
        ]
    )
