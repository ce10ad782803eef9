"""Property tests: the pricing module against an independent exact (Fraction) computation."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from services.shared.pricing import PriceSnapshot, TokenUsage, reserve_amount, settle_amount

# Ratios as admins type them: up to 4 decimals, never binary floats of arbitrary precision.
ratios = st.decimals(min_value=0, max_value=100, places=4).map(lambda d: float(d))
positive_ratios = st.decimals(min_value="0.0001", max_value=100, places=4).map(lambda d: float(d))
counts = st.integers(min_value=0, max_value=2_000_000)


def exact(value: float) -> Fraction:
    return Fraction(str(value))


def round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def reference_text(price: PriceSnapshot, usage: TokenUsage) -> int:
    """Written from upstream `service/quota.go` directly, in exact rationals."""
    if usage.prompt_tokens + usage.completion_tokens + usage.cache_creation_tokens <= 0:
        return 0
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    weighted = (
        (usage.prompt_tokens - cached)
        + cached * exact(price.cache_ratio)
        + usage.cache_creation_tokens * exact(price.cache_creation_ratio)
        + usage.completion_tokens * exact(price.completion_ratio)
    )
    ratio = exact(price.model_ratio) * exact(price.group_ratio)
    quota = round_half_up(weighted * ratio)
    if ratio != 0 and weighted > 0 and quota <= 0:
        return 1
    return quota


def text_price(
    model: float, completion: float, cache: float, creation: float, group: float
) -> PriceSnapshot:
    return PriceSnapshot(False, 0.0, model, completion, cache, creation, group, 500_000)


@settings(max_examples=400, deadline=None)
@given(
    model=ratios,
    completion=ratios,
    cache=ratios,
    creation=ratios,
    group=ratios,
    prompt=counts,
    cached=counts,
    creation_tokens=st.integers(min_value=0, max_value=100_000),
    completion_tokens=counts,
)
def test_text_settlement_matches_the_reference(
    model: float,
    completion: float,
    cache: float,
    creation: float,
    group: float,
    prompt: int,
    cached: int,
    creation_tokens: int,
    completion_tokens: int,
) -> None:
    price = text_price(model, completion, cache, creation, group)
    usage = TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        cached_tokens=cached,
        cache_creation_tokens=creation_tokens,
    )
    assert settle_amount(price, usage) == reference_text(price, usage)


@settings(max_examples=300, deadline=None)
@given(model=positive_ratios, group=positive_ratios, prompt=counts, completion=counts)
def test_a_priced_non_empty_request_costs_at_least_one_unit(
    model: float, group: float, prompt: int, completion: int
) -> None:
    price = text_price(model, 1.0, 1.0, 1.0, group)
    quota = settle_amount(price, TokenUsage(prompt_tokens=prompt, completion_tokens=completion))
    assert quota >= (1 if prompt + completion > 0 else 0)


@settings(max_examples=300, deadline=None)
@given(
    model_price=st.decimals(min_value=0, max_value=50, places=4).map(float),
    group=ratios,
    n=st.integers(min_value=1, max_value=10),
)
def test_price_mode_matches_the_reference(model_price: float, group: float, n: int) -> None:
    price = PriceSnapshot(True, model_price, 0.0, 1.0, 1.0, 1.0, group, 500_000)
    amount = exact(model_price) * 500_000 * exact(group)
    expected = max(round_half_up(amount), 1) if amount != 0 else 0
    assert settle_amount(price, TokenUsage(prompt_tokens=1)) == expected
    held = reserve_amount(price, prompt_tokens=10, max_output_tokens=0)
    assert held == expected
    images = TokenUsage(image_count=n, image_size="1024x1024", kind="image")
    image_amount = amount * n
    assert settle_amount(price, images) == (
        max(round_half_up(image_amount), 1) if image_amount != 0 else 0
    )


@settings(max_examples=300, deadline=None)
@given(
    model=ratios,
    completion_ratio=ratios,
    cache=ratios,
    group=ratios,
    prompt=counts,
    output=counts,
    cached=counts,
    completion=counts,
)
def test_no_usage_within_the_hold_costs_more_than_the_hold(
    model: float,
    completion_ratio: float,
    cache: float,
    group: float,
    prompt: int,
    output: int,
    cached: int,
    completion: int,
) -> None:
    """The hold is the worst case: any usage up to the prompt and the output it covers settles
    at or below it."""
    price = text_price(model, completion_ratio, cache, 1.25, group)
    held = reserve_amount(price, prompt_tokens=prompt, max_output_tokens=output)
    usage = TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=min(completion, output),
        cached_tokens=min(cached, prompt),
    )
    assert settle_amount(price, usage) <= held


@settings(max_examples=200, deadline=None)
@given(prompt=counts, completion=counts, extra=st.integers(min_value=1, max_value=1000))
def test_more_usage_never_costs_less(prompt: int, completion: int, extra: int) -> None:
    price = text_price(1.25, 4.0, 0.5, 1.25, 1.5)
    base = settle_amount(price, TokenUsage(prompt_tokens=prompt, completion_tokens=completion))
    more = settle_amount(
        price, TokenUsage(prompt_tokens=prompt + extra, completion_tokens=completion)
    )
    assert more >= base
