"""Hourly usage rollups per user and model (upstream `model/usedata.go`), upserted at settlement
(store/settle_batch.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.shared.db import Connection, Where
from services.shared.errors import InvalidArgument

GRANULARITIES = {"hour": "hour", "day": "day", "week": "week", "": "hour"}
MAX_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class UsagePoint:
    user_id: int
    username: str
    model_name: str
    created_at: datetime
    token_used: int
    count: int
    quota: int


async def query(
    conn: Connection,
    *,
    user_id: int,
    username: str,
    start: int,
    end: int,
    granularity: str,
) -> list[UsagePoint]:
    """Buckets of the given granularity per user and model in [start, end] (unix seconds)."""
    unit = GRANULARITIES.get(granularity)
    if unit is None:
        raise InvalidArgument("granularity must be one of hour, day, week")
    if start and end and start > end:
        raise InvalidArgument("start_timestamp must not be after end_timestamp")
    # The bucket holding `start` counts: buckets are labelled by the start of their hour.
    where = Where(
        ["created_at >= date_trunc('hour', to_timestamp($2))", "created_at <= to_timestamp($3)"],
        [unit, start, end or 32503680000],
    )
    if user_id:
        where.add("user_id = {}", user_id)
    if username:
        where.add("username = {}", username)
    rows = await conn.fetch(
        "SELECT user_id, max(username) AS username, model_name,"
        " date_trunc($1, created_at) AS bucket, sum(token_used) AS token_used,"
        " sum(count) AS count, sum(quota) AS quota FROM quota_data"
        f"{where.sql()}"
        f" GROUP BY user_id, model_name, bucket ORDER BY bucket, user_id, model_name"
        f" LIMIT {MAX_ROWS}",
        *where.args,
    )
    return [
        UsagePoint(
            user_id=row["user_id"],
            username=row["username"],
            model_name=row["model_name"],
            created_at=row["bucket"],
            token_used=int(row["token_used"]),
            count=int(row["count"]),
            quota=int(row["quota"]),
        )
        for row in rows
    ]
