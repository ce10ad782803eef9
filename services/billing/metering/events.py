"""What a committed settlement announces: its metrics, the usage event, and a quota warning
when it took the balance below the threshold. Best effort, after the commit."""

from __future__ import annotations

import logging
import time

from veloera.billing.v1 import events_pb2

from services.billing.context import Billing
from services.billing.metering.settlement import SettleInput, SettleResult
from services.billing.metrics import QUOTA_CHARGED, QUOTA_UNCOLLECTED, SETTLEMENTS
from services.shared import subjects
from services.shared.pricing import settle_amount

logger = logging.getLogger(__name__)

_PUBLISH_TIMEOUT = 2.0


async def settled(
    billing: Billing, spec: SettleInput, result: SettleResult, balance: int | None
) -> None:
    """Metrics and events of one committed settlement."""
    if result.already_settled:
        SETTLEMENTS.labels("repeated").inc()
        return
    SETTLEMENTS.labels("empty" if spec.usage.is_empty else "settled").inc()
    QUOTA_CHARGED.inc(result.charged)
    uncollected = settle_amount(result.hold.price, spec.usage) - result.charged
    if uncollected > 0:
        QUOTA_UNCOLLECTED.inc(uncollected)
    await _publish_usage(billing, spec, result)
    if balance is not None:
        await _warn_if_crossed(billing, result, balance, spec.quota_warning_threshold)


async def _warn_if_crossed(billing: Billing, result: SettleResult, balance: int, own: int) -> None:
    """A QuotaWarningEvent when this request took the balance below the threshold (the
    user's own, else the QuotaRemindThreshold option)."""
    threshold = own or billing.prices.table.number("QuotaRemindThreshold")
    if billing.js is None or threshold <= 0:
        return
    if not balance < threshold <= balance + result.charged:
        return
    event = events_pb2.QuotaWarningEvent(
        user_id=result.hold.user_id,
        balance=balance,
        threshold=threshold,
        occur_time=int(time.time()),
    )
    try:
        await billing.js.publish(
            subjects.QUOTA_WARNING_SUBJECT, event.SerializeToString(), timeout=_PUBLISH_TIMEOUT
        )
    except Exception:  # best effort, like the usage event
        logger.warning("quota warning for user %d not published", result.hold.user_id)


async def _publish_usage(billing: Billing, spec: SettleInput, result: SettleResult) -> None:
    """Best effort, after the commit: a lost event only delays a dashboard."""
    if billing.js is None:
        return
    event = events_pb2.UsageEvent(
        request_id=spec.request_id,
        user_id=result.hold.user_id,
        model_name=spec.model_name or result.hold.model,
        channel_id=spec.channel_id,
        quota=result.charged,
        prompt_tokens=spec.usage.prompt_tokens,
        completion_tokens=spec.usage.completion_tokens,
        occur_time=int(time.time()),
    )
    try:
        await billing.js.publish(
            subjects.USAGE_SUBJECT, event.SerializeToString(), timeout=_PUBLISH_TIMEOUT
        )
    except Exception:  # any publish failure is tolerated
        logger.warning("usage event for %s not published", spec.request_id, exc_info=True)
