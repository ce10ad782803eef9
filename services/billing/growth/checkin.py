"""Daily check-in (Veloera's 签到): one reward per user and calendar day in
the configured time zone, enforced by the (user, day) primary key inside the crediting
transaction."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from services.billing.context import Billing
from services.billing.metering import adjust
from services.billing.store import checkins
from services.shared.errors import FailedPrecondition, InvalidArgument


@dataclass(frozen=True, slots=True)
class Status:
    enabled: bool
    can_check_in: bool
    day: date


def today(zone: str, now: datetime | None = None) -> date:
    moment = now or datetime.now(UTC)
    return moment.astimezone(ZoneInfo(zone)).date()


def reward(minimum: int, maximum: int) -> int:
    """Uniform in [minimum, maximum] when maximum > minimum, else the fixed minimum."""
    if maximum > minimum:
        return minimum + secrets.randbelow(maximum - minimum + 1)
    return minimum


async def status(billing: Billing, *, user_id: int) -> Status:
    table = billing.prices.table
    enabled = table.flag("CheckInEnabled")
    day = today(str(table.values["CheckInTimeZone"]))
    async with billing.pool.acquire() as conn:
        done = await checkins.has_day(conn, user_id=user_id, day=day)
    return Status(enabled=enabled, can_check_in=enabled and not done, day=day)


async def check_in(billing: Billing, *, user_id: int) -> tuple[int, date]:
    """Credit today's reward once; (quota, day)."""
    table = billing.prices.table
    if not table.flag("CheckInEnabled"):
        raise FailedPrecondition("daily check-in is not enabled", code="check_in_disabled")
    day = today(str(table.values["CheckInTimeZone"]))
    quota = reward(table.number("CheckInQuota"), table.number("CheckInMaxQuota"))
    if user_id <= 0:
        raise InvalidArgument("user_id must be positive")
    async with billing.pool.acquire() as conn, conn.transaction():
        if not await checkins.claim_day(conn, user_id=user_id, day=day, quota=quota):
            raise FailedPrecondition("you have already checked in today", code="already_checked_in")
        await adjust.adjust(
            conn,
            change=adjust.Adjustment.credit(
                key=f"checkin:{user_id}:{day.isoformat()}",
                user_id=user_id,
                quota=quota,
                kind="checkin",
                reason=f"check-in {day.isoformat()}",
                log_content=f"每日签到奖励 {quota}（{day.isoformat()}）",
            ),
        )
    return quota, day
