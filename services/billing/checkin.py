"""Daily check-in (reference §7.4): one reward per user and calendar day in the configured time
zone, enforced by the (user, day) primary key inside the crediting transaction."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from services.billing import adjust
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition, InvalidArgument

CLAIM_DAY = """
INSERT INTO check_ins (user_id, day, quota) VALUES ($1, $2, $3)
ON CONFLICT (user_id, day) DO NOTHING RETURNING day
"""
HAS_DAY = "SELECT 1 FROM check_ins WHERE user_id = $1 AND day = $2"


def today(zone: str, now: datetime | None = None) -> date:
    moment = now or datetime.now(UTC)
    return moment.astimezone(ZoneInfo(zone)).date()


def reward(minimum: int, maximum: int) -> int:
    """Uniform in [minimum, maximum] when maximum > minimum, else the fixed minimum."""
    if maximum > minimum:
        return minimum + secrets.randbelow(maximum - minimum + 1)
    return minimum


async def can_check_in(conn: Connection, *, user_id: int, day: date) -> bool:
    return await conn.fetchval(HAS_DAY, user_id, day) is None


async def check_in(
    conn: Connection, *, user_id: int, day: date, quota: int, username: str = ""
) -> int:
    """Credit today's reward once; the caller owns the transaction."""
    if user_id <= 0:
        raise InvalidArgument("user_id must be positive")
    if await conn.fetchval(CLAIM_DAY, user_id, day, quota) is None:
        raise FailedPrecondition("you have already checked in today", code="already_checked_in")
    await adjust.adjust(
        conn,
        change=adjust.Adjustment(
            idempotency_key=f"checkin:{user_id}:{day.isoformat()}",
            user_id=user_id,
            delta=quota,
            set_to=None,
            reason=f"check-in {day.isoformat()}",
            actor_id=0,
            kind="checkin",
            subscription=False,
            log_content=f"每日签到奖励 {quota}（{day.isoformat()}）",
            username=username,
        ),
    )
    return quota
