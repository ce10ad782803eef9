"""Pricing options: defaults, validation, storage, and an in-process cache of effective prices."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from services.billing import pricing
from services.billing.pricing import PriceSnapshot
from services.shared.errors import FailedPrecondition, InvalidArgument
from services.shared.options import PRICING_OPTION_KEYS

logger = logging.getLogger(__name__)

# Model ratio 1 = $2 per 1M prompt tokens (reference §4.1).
DEFAULT_MODEL_RATIO: dict[str, float] = {
    "gpt-3.5-turbo": 0.25,
    "gpt-3.5-turbo-0125": 0.25,
    "gpt-3.5-turbo-1106": 0.5,
    "gpt-4": 15,
    "gpt-4-32k": 30,
    "gpt-4-turbo": 5,
    "gpt-4-turbo-2024-04-09": 5,
    "gpt-4o": 1.25,
    "gpt-4o-2024-05-13": 2.5,
    "gpt-4o-2024-08-06": 1.25,
    "gpt-4o-2024-11-20": 1.25,
    "gpt-4o-mini": 0.075,
    "gpt-4o-mini-2024-07-18": 0.075,
    "chatgpt-4o-latest": 2.5,
    "gpt-4.1": 1,
    "gpt-4.1-mini": 0.2,
    "gpt-4.1-nano": 0.05,
    "o1": 7.5,
    "o1-mini": 0.55,
    "o3": 1,
    "o3-mini": 0.55,
    "o4-mini": 0.55,
    "text-embedding-3-small": 0.01,
    "text-embedding-3-large": 0.065,
    "text-embedding-ada-002": 0.05,
    "claude-3-haiku-20240307": 0.125,
    "claude-3-5-haiku-20241022": 0.4,
    "claude-3-5-sonnet-20240620": 1.5,
    "claude-3-5-sonnet-20241022": 1.5,
    "claude-3-5-sonnet-latest": 1.5,
    "claude-3-7-sonnet-20250219": 1.5,
    "claude-3-opus-20240229": 7.5,
    "claude-sonnet-4-20250514": 1.5,
    "claude-opus-4-20250514": 7.5,
    "gemini-1.5-pro": 1.25,
    "gemini-1.5-flash": 0.0375,
    "gemini-2.0-flash": 0.05,
    "gemini-2.5-pro": 0.625,
    "gemini-2.5-flash": 0.15,
    "deepseek-chat": 0.135,
    "deepseek-reasoner": 0.275,
}

DEFAULT_CACHE_RATIO: dict[str, float] = {
    "gpt-4o": 0.5,
    "gpt-4o-2024-08-06": 0.5,
    "gpt-4o-2024-11-20": 0.5,
    "gpt-4o-mini": 0.5,
    "gpt-4o-mini-2024-07-18": 0.5,
    "gpt-4.1": 0.25,
    "gpt-4.1-mini": 0.25,
    "gpt-4.1-nano": 0.25,
    "o1": 0.5,
    "o1-mini": 0.5,
    "o3-mini": 0.5,
    "deepseek-chat": 0.25,
    "deepseek-reasoner": 0.25,
    "claude-3-haiku-20240307": 0.1,
    "claude-3-5-haiku-20241022": 0.1,
    "claude-3-5-sonnet-20240620": 0.1,
    "claude-3-5-sonnet-20241022": 0.1,
    "claude-3-5-sonnet-latest": 0.1,
    "claude-3-7-sonnet-20250219": 0.1,
    "claude-3-opus-20240229": 0.1,
    "claude-sonnet-4-20250514": 0.1,
    "claude-opus-4-20250514": 0.1,
}

DEFAULTS: dict[str, Any] = {
    "ModelRatio": DEFAULT_MODEL_RATIO,
    "ModelPrice": {},
    "CompletionRatio": {},
    "CacheRatio": DEFAULT_CACHE_RATIO,
    "GroupRatio": {"default": 1, "vip": 1, "svip": 1},
    "QuotaPerUnit": 500_000,
    "PreConsumedQuota": 500,
    "UserUsableGroups": {"default": "默认分组", "vip": "vip分组"},
}
assert set(DEFAULTS) == PRICING_OPTION_KEYS

_NUMBER_MAPS = frozenset(
    {"ModelRatio", "ModelPrice", "CompletionRatio", "CacheRatio", "GroupRatio"}
)
_INTEGERS = frozenset({"QuotaPerUnit", "PreConsumedQuota"})

SELECT_OPTIONS = "SELECT key, value FROM pricing_options"
UPSERT_OPTION = """
INSERT INTO pricing_options (key, value, updated_by) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by,
    updated_at = now()
"""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_option(key: str, raw: str) -> Any:
    """The parsed value of a pricing option, or InvalidArgument saying what is wrong."""
    if key not in PRICING_OPTION_KEYS:
        raise InvalidArgument(f"{key} is not a pricing option", code="invalid_option")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"{key} must be valid JSON: {exc}", code="invalid_option") from exc
    if key in _INTEGERS:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"{key} must be a non-negative integer", code="invalid_option")
        if key == "QuotaPerUnit" and value == 0:
            raise InvalidArgument("QuotaPerUnit must be greater than 0", code="invalid_option")
        return value
    if not isinstance(value, dict):
        raise InvalidArgument(f"{key} must be a JSON object", code="invalid_option")
    if key in _NUMBER_MAPS:
        for name, number in value.items():
            if not _is_number(number) or number < 0:
                raise InvalidArgument(
                    f"{key}[{name!r}] must be a non-negative number, got {number!r}",
                    code="invalid_option",
                )
        return value
    for name, label in value.items():
        if not isinstance(label, str):
            raise InvalidArgument(f"{key}[{name!r}] must be a string", code="invalid_option")
    return value


@dataclass(frozen=True, slots=True)
class PricingTable:
    """Effective pricing options: stored values over defaults."""

    values: dict[str, Any]

    def option_text(self, key: str) -> str:
        return orjson.dumps(self.values[key], option=orjson.OPT_SORT_KEYS).decode()

    @property
    def pre_consumed_quota(self) -> int:
        return int(self.values["PreConsumedQuota"])

    def resolve(self, model: str, group: str) -> PriceSnapshot:
        """The price of `model` for `group`, or FailedPrecondition when either is unpriced."""
        group_ratios: dict[str, float] = self.values["GroupRatio"]
        if group not in group_ratios:
            raise FailedPrecondition(
                f"group {group} has no ratio configured", code="group_not_priced"
            )
        model_prices: dict[str, float] = self.values["ModelPrice"]
        model_ratios: dict[str, float] = self.values["ModelRatio"]
        per_call = model in model_prices
        if not per_call and model not in model_ratios:
            raise FailedPrecondition(
                f"model {model} has no price or ratio configured", code="model_price_error"
            )
        cache_ratios: dict[str, float] = self.values["CacheRatio"]
        return PriceSnapshot(
            per_call=per_call,
            model_price=float(model_prices.get(model, 0.0)),
            model_ratio=float(model_ratios.get(model, 0.0)),
            completion_ratio=pricing.completion_ratio(model, self.values["CompletionRatio"]),
            cache_ratio=float(cache_ratios.get(model, 1.0)),
            cache_creation_ratio=pricing.cache_creation_ratio(model),
            group_ratio=float(group_ratios[group]),
            quota_per_unit=int(self.values["QuotaPerUnit"]),
        )


def build_table(stored: dict[str, str]) -> PricingTable:
    values = dict(DEFAULTS)
    for key, raw in stored.items():
        if key not in PRICING_OPTION_KEYS:
            continue
        try:
            values[key] = parse_option(key, raw)
        except InvalidArgument as exc:
            logger.error("ignoring invalid stored pricing option %s: %s", key, exc.message)
    return PricingTable(values)


class PricingStore:
    """The process's cache of pricing options, refreshed on update and every few seconds so
    several billing replicas converge."""

    def __init__(self, pool: asyncpg.Pool, *, refresh_seconds: float) -> None:
        self._pool = pool
        self._refresh_seconds = refresh_seconds
        self._table = build_table({})
        self._lock = asyncio.Lock()

    @property
    def table(self) -> PricingTable:
        return self._table

    async def refresh(self) -> None:
        async with self._lock:
            rows = await self._pool.fetch(SELECT_OPTIONS)
            self._table = build_table({row["key"]: row["value"] for row in rows})

    async def update(self, *, key: str, raw: str, actor_id: int) -> str:
        """Validate, store and apply one option; returns its effective JSON text."""
        parse_option(key, raw)
        await self._pool.execute(UPSERT_OPTION, key, raw, actor_id)
        await self.refresh()
        return self._table.option_text(key)

    async def run_refresher(self) -> None:
        """Background loop: pick up options changed by other replicas."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # the loop must survive anything; the old table stays in use
                logger.warning("pricing refresh failed", exc_info=True)
