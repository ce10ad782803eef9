"""Conversions of the pricing RPCs: options, one price, the pricing page's list."""

from __future__ import annotations

from veloera.billing.v1 import billing_pb2

from services.billing.pricing.catalog import ModelPrice, PriceList


def options_pb(options: list[tuple[str, str]]) -> billing_pb2.GetPricingOptionsResponse:
    return billing_pb2.GetPricingOptionsResponse(
        options=[billing_pb2.PricingOption(key=key, value=value) for key, value in options]
    )


def _model_price_pb(row: ModelPrice) -> billing_pb2.ModelPriceInfo:
    price = row.price
    if price is None:
        return billing_pb2.ModelPriceInfo(model_name=row.model_name, priced=False)
    return billing_pb2.ModelPriceInfo(
        model_name=row.model_name,
        per_call=price.per_call,
        model_price=price.model_price,
        model_ratio=price.model_ratio,
        completion_ratio=price.completion_ratio,
        cache_ratio=price.cache_ratio,
        input_per_million=row.input_per_million,
        output_per_million=row.output_per_million,
        priced=True,
    )


def price_list_pb(prices: PriceList) -> billing_pb2.ListModelPricesResponse:
    return billing_pb2.ListModelPricesResponse(
        items=[_model_price_pb(row) for row in prices.items],
        group_ratio=prices.group_ratio,
        usable_groups=prices.usable_groups,
    )
