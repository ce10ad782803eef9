"""Which runtime options live where: pricing options in billing, every other one in accounts."""

from __future__ import annotations

PRICING_OPTION_KEYS = frozenset(
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

# Written to both services: accounts needs it to compute a user's usable groups.
SHARED_OPTION_KEYS = frozenset({"UserUsableGroups"})
