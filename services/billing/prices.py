"""Pricing options: defaults, validation, storage, and an in-process cache of effective prices."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import orjson

from services.billing.extra_options import (
    EXTRA_DEFAULTS,
    EXTRA_OPTION_KEYS,
    parse_extra,
    validate_fallback,
)
from services.billing.price_defaults import (
    DEFAULT_CACHE_RATIO,
    DEFAULT_COMPLETION_RATIO,
    DEFAULT_MODEL_PRICE,
    DEFAULT_MODEL_RATIO,
    DEFAULT_OUTPUT_LIMIT,
    DEFAULT_OUTPUT_LIMITS,
)
from services.shared import pricing_rules as rules
from services.shared.crypto import SecretBox
from services.shared.errors import FailedPrecondition, InvalidArgument
from services.shared.option_secrets import plaintext_secrets, seal, unsealed
from services.shared.options import PRICING_OPTION_KEYS
from services.shared.pricing import PriceSnapshot

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "ModelRatio": DEFAULT_MODEL_RATIO,
    "ModelPrice": DEFAULT_MODEL_PRICE,
    "CompletionRatio": DEFAULT_COMPLETION_RATIO,
    "CacheRatio": DEFAULT_CACHE_RATIO,
    "GroupRatio": {"default": 1, "vip": 1, "svip": 1},
    "QuotaPerUnit": 500_000,
    "PreConsumedQuota": 500,
    "UserUsableGroups": {"default": "默认分组", "vip": "vip分组"},
    **EXTRA_DEFAULTS,
}
# Every key billing stores: the shared pricing keys plus billing's own extras.
BILLING_OPTION_KEYS = PRICING_OPTION_KEYS | EXTRA_OPTION_KEYS
assert set(DEFAULTS) == BILLING_OPTION_KEYS

_NUMBER_MAPS = frozenset(
    {"ModelRatio", "ModelPrice", "CompletionRatio", "CacheRatio", "GroupRatio"}
)
_INTEGERS = frozenset({"QuotaPerUnit", "PreConsumedQuota"})

SELECT_OPTIONS = "SELECT key, value FROM pricing_options"
RESEAL_OPTION = "UPDATE pricing_options SET value = $2 WHERE key = $1"
UPSERT_OPTION = """
INSERT INTO pricing_options (key, value, updated_by) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by,
    updated_at = now()
"""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_option(key: str, raw: str) -> Any:
    """The parsed value of a pricing option, or InvalidArgument saying what is wrong."""
    if key not in BILLING_OPTION_KEYS:
        raise InvalidArgument(f"{key} is not a pricing option", code="invalid_option")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if key in EXTRA_OPTION_KEYS:
            return parse_extra(key, raw.strip(), raw.strip())
        raise InvalidArgument(f"{key} must be valid JSON: {exc}", code="invalid_option") from exc
    if key in EXTRA_OPTION_KEYS:
        return parse_extra(key, value, raw.strip())
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
        value = self.values[key]
        if isinstance(value, str):
            return value
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

    def output_limit(self, model: str) -> int:
        """Output tokens held for a request of `model` that sets no max_tokens: the
        ModelOutputLimit option over the defaults, by exact name, else the longest name prefix,
        else the option's "*" entry, else DEFAULT_OUTPUT_LIMIT."""
        limits: dict[str, int] = {**DEFAULT_OUTPUT_LIMITS, **self.values["ModelOutputLimit"]}
        if model in limits:
            return limits[model]
        prefixes = [name for name in limits if name != "*" and model.startswith(name)]
        if prefixes:
            return limits[max(prefixes, key=len)]
        return int(limits.get("*", DEFAULT_OUTPUT_LIMIT))

    def flag(self, key: str) -> bool:
        return bool(self.values[key])

    def number(self, key: str) -> int:
        return int(self.values[key])

    def priced_name(self, *, model: str, requested: str, upstream: str) -> str:
        """Redirect billing (reference §4.2.1): the requested name when the option is on,
        else the upstream name; `model` when the relay sent neither."""
        if self.flag("redirect_billing_enabled"):
            return requested or model or upstream
        return upstream or model or requested

    def resolve(self, model: str, group: str, *, accept_unpriced: bool = False) -> PriceSnapshot:
        """The price of `model` for `group`, or FailedPrecondition when either is unpriced."""
        group_ratios: dict[str, float] = self.values["GroupRatio"]
        if group not in group_ratios:
            raise FailedPrecondition(
                f"group {group} has no ratio configured", code="group_not_priced"
            )
        base = self._base(model, float(group_ratios[group]))
        fallback = self.flag("fallback_pricing_enabled")
        if fallback and self.flag("SelfUseModeEnabled"):
            return self._fallback(base)
        model_prices: dict[str, float] = self.values["ModelPrice"]
        model_ratios: dict[str, float] = self.values["ModelRatio"]
        price_key = _price_key(model)
        if price_key in model_prices:
            return replace(base, per_call=True, model_price=float(model_prices[price_key]))
        if rules.is_task_model(model):
            task_price = model_ratios.get(model, rules.DEFAULT_TASK_PRICE)
            return replace(base, per_call=True, model_price=float(task_price))
        if model in model_ratios:
            return replace(base, model_ratio=float(model_ratios[model]))
        if fallback:
            return self._fallback(base)
        if accept_unpriced or self.flag("SelfUseModeEnabled"):
            return replace(base, model_ratio=rules.UNPRICED_MODEL_RATIO, fallback=True)
        raise FailedPrecondition(
            f"模型 {model} 倍率或价格未配置 (model {model} has no price or ratio configured)",
            code="model_price_error",
        )

    def _base(self, model: str, group_ratio: float) -> PriceSnapshot:
        cache_ratios: dict[str, float] = self.values["CacheRatio"]
        audio = rules.audio_ratios(model)
        return PriceSnapshot(
            per_call=False,
            model_price=0.0,
            model_ratio=0.0,
            completion_ratio=rules.completion_ratio(model, self.values["CompletionRatio"]),
            cache_ratio=float(cache_ratios.get(model, 1.0)),
            cache_creation_ratio=rules.cache_creation_ratio(model),
            group_ratio=group_ratio,
            quota_per_unit=int(self.values["QuotaPerUnit"]),
            priced_model=model,
            audio_ratio=audio[0] if audio else 1.0,
            audio_completion_ratio=audio[1] if audio else None,
        )

    def _fallback(self, base: PriceSnapshot) -> PriceSnapshot:
        single = float(self.values["fallback_single_price"])
        if single > 0:
            return replace(base, per_call=True, model_price=single, fallback=True)
        return replace(
            base,
            model_ratio=float(self.values["fallback_input_ratio"]),
            completion_ratio=float(self.values["fallback_completion_ratio"]),
            fallback=True,
        )

    def priced_models(self) -> list[str]:
        """Every model with an explicit price or ratio, sorted."""
        return sorted(set(self.values["ModelRatio"]) | set(self.values["ModelPrice"]))


def _price_key(model: str) -> str:
    """gpt-4-gizmo* and gpt-4o-gizmo* collapse to their wildcard entries (reference §4.2.2)."""
    for prefix in ("gpt-4o-gizmo", "gpt-4-gizmo"):
        if model.startswith(prefix):
            return f"{prefix}-*"
    return model


def build_table(stored: dict[str, str]) -> PricingTable:
    values = dict(DEFAULTS)
    for key, raw in stored.items():
        if key not in BILLING_OPTION_KEYS:
            continue
        try:
            values[key] = parse_option(key, raw)
        except InvalidArgument as exc:
            logger.error("ignoring invalid stored pricing option %s: %s", key, exc.message)
    try:
        validate_fallback(values)
    except InvalidArgument as exc:
        logger.error("fallback pricing disabled: %s", exc.message)
        values["fallback_pricing_enabled"] = False
    return PricingTable(values)


class PricingStore:
    """The process's cache of pricing options, refreshed on update and every few seconds so
    several billing replicas converge."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        refresh_seconds: float,
        box: SecretBox,
        announce: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._box = box  # EpayKey is stored encrypted (services.shared.option_secrets)
        self._refresh_seconds = refresh_seconds
        self._announce = announce  # tells every replica and relay that `key` changed
        self._table = build_table({})
        self._lock = asyncio.Lock()

    @property
    def table(self) -> PricingTable:
        return self._table

    async def refresh(self) -> None:
        async with self._lock:
            rows = await self._pool.fetch(SELECT_OPTIONS)
            stored = {row["key"]: row["value"] for row in rows}
            self._table = build_table(unsealed(self._box, stored))

    async def seal_plaintext_secrets(self) -> list[str]:
        """Encrypt secrets stored in plaintext before encryption at rest (run at start)."""
        rows = await self._pool.fetch(SELECT_OPTIONS)
        found = plaintext_secrets({row["key"]: row["value"] for row in rows})
        for key, value in found.items():
            await self._pool.execute(RESEAL_OPTION, key, seal(self._box, key, value))
        return sorted(found)

    async def update(self, *, key: str, raw: str, actor_id: int) -> str:
        """Validate, store and apply one option; returns its effective JSON text."""
        value = parse_option(key, raw)
        if key.startswith("fallback_"):
            validate_fallback({**self._table.values, key: value})
        await self._pool.execute(UPSERT_OPTION, key, seal(self._box, key, raw), actor_id)
        await self.refresh()
        if self._announce is not None:
            try:
                await self._announce(key)
            except Exception:  # the other replicas still catch up on their next refresh
                logger.warning("price change of %s not announced", key, exc_info=True)
        return self._table.option_text(key)

    async def refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception:  # the old table stays in use until the next refresh
            logger.warning("pricing refresh failed", exc_info=True)

    async def run_refresher(self) -> None:
        """Background loop: options changed by other replicas arrive as PRICES_CHANGED at
        once; this catches a missed announcement."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            await self.refresh_quietly()
