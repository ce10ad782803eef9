"""The price table: pricing options (stored values over defaults, validated) and how a model's
price resolves from them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import orjson

from services.billing.pricing.defaults import (
    DEFAULT_CACHE_RATIO,
    DEFAULT_COMPLETION_RATIO,
    DEFAULT_MODEL_PRICE,
    DEFAULT_MODEL_RATIO,
    DEFAULT_OUTPUT_LIMIT,
    DEFAULT_OUTPUT_LIMITS,
)
from services.billing.pricing.options import (
    EXTRA_DEFAULTS,
    EXTRA_OPTION_KEYS,
    parse_extra,
    validate_fallback,
)
from services.shared import pricing_rules as rules
from services.shared.errors import FailedPrecondition, InvalidArgument
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
        """Redirect billing (upstream `relay/helper/price.go`): the requested name when the
        option is on, else the upstream name; `model` when the relay sent neither."""
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
    """gpt-4-gizmo* and gpt-4o-gizmo* collapse to their wildcard entries, as upstream
    `relay/helper/price.go` does."""
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
