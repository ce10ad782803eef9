"""Which runtime options live where: pricing options in billing, every other one in accounts."""

from __future__ import annotations

# Options billing acts on beyond the price tables. They are written to both services (billing
# acts on them; accounts keeps them for the status page and validation across options).
BILLING_EXTRA_KEYS = frozenset(
    {
        "fallback_pricing_enabled",
        "fallback_single_price",
        "fallback_input_ratio",
        "fallback_completion_ratio",
        "redirect_billing_enabled",
        "SelfUseModeEnabled",
        "CheckInEnabled",
        "CheckInQuota",
        "CheckInMaxQuota",
        "CheckInTimeZone",
        "ModelRequestRateLimitEnabled",
        "ModelRequestRateLimitDurationMinutes",
        "ModelRequestRateLimitCount",
        "ModelRequestRateLimitSuccessCount",
        "QuotaRemindThreshold",
        "QuotaForNewUser",
        "QuotaForInviter",
        "QuotaForInvitee",
        "RebateEnabled",
        "RebatePercentage",
        "Price",
        "MinTopUp",
        "TopupGroupRatio",
        "PayAddress",
        "EpayId",
        "EpayKey",
    }
)

PRICING_OPTION_KEYS = (
    frozenset(
        {
            "ModelRatio",
            "ModelPrice",
            "CompletionRatio",
            "CacheRatio",
            "GroupRatio",
            "QuotaPerUnit",
            "PreConsumedQuota",
            "UserUsableGroups",
        }
    )
    | BILLING_EXTRA_KEYS
)

# Written to both services: accounts needs UserUsableGroups to compute a user's usable groups,
# and keeps the billing extras above.
SHARED_OPTION_KEYS = frozenset({"UserUsableGroups"}) | BILLING_EXTRA_KEYS
