"""What the console and the pricing page read: option texts, one model's price, the price list;
and the admin's option update."""

from __future__ import annotations

from dataclasses import dataclass

from services.billing.pricing.live import LivePrices
from services.billing.pricing.table import BILLING_OPTION_KEYS, PricingTable
from services.shared.errors import FailedPrecondition
from services.shared.pricing import PriceSnapshot

USD_PER_RATIO_PER_MILLION = 2.0  # model ratio 1 = $2 per 1M tokens


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One row of the pricing page; `price` is None when the model is not priced."""

    model_name: str
    price: PriceSnapshot | None
    input_per_million: float = 0.0
    output_per_million: float = 0.0


@dataclass(frozen=True, slots=True)
class PriceList:
    items: list[ModelPrice]
    group_ratio: dict[str, float]
    usable_groups: dict[str, str]


def options(prices: LivePrices) -> list[tuple[str, str]]:
    """(key, effective text) of every billing option, sorted by key."""
    table = prices.table
    return [(key, table.option_text(key)) for key in sorted(BILLING_OPTION_KEYS)]


async def update_option(prices: LivePrices, *, key: str, raw: str, actor_id: int) -> str:
    """Store one option and announce it; its effective text."""
    return await prices.update(key=key, raw=raw, actor_id=actor_id)


def quote(prices: LivePrices, *, model: str, group: str) -> PriceSnapshot:
    return prices.table.resolve(model, group or "default")


def price_list(prices: LivePrices, *, models: list[str]) -> PriceList:
    """The asked models (else every priced one) at the default group's ratio."""
    table = prices.table
    group_ratio = {k: float(v) for k, v in table.values["GroupRatio"].items()}
    group = "default" if "default" in group_ratio else next(iter(group_ratio), "default")
    return PriceList(
        items=[
            _model_price(table, model, group)
            for model in (sorted(set(models)) or table.priced_models())
        ],
        group_ratio=group_ratio,
        usable_groups={k: str(v) for k, v in table.values["UserUsableGroups"].items()},
    )


def _model_price(table: PricingTable, model: str, group: str) -> ModelPrice:
    try:
        price = table.resolve(model, group)
    except FailedPrecondition:
        return ModelPrice(model, None)
    input_usd = 0.0 if price.per_call else price.model_ratio * USD_PER_RATIO_PER_MILLION
    return ModelPrice(model, price, input_usd, input_usd * price.completion_ratio)
