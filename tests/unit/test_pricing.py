"""Pure billing math (upstream `relay/helper/price.go` and `service/quota.go`): ratio and price
modes, cache, rounding, minimums.
"""

from __future__ import annotations

import pytest

from services.billing.pricing.table import PricingTable, build_table, parse_option
from services.shared.errors import FailedPrecondition, InvalidArgument
from services.shared.pricing import (
    PriceSnapshot,
    TokenUsage,
    completion_ratio,
    reserve_amount,
    settle_amount,
)


def ratio_price(
    model_ratio: float,
    completion: float = 1.0,
    group: float = 1.0,
    cache: float = 1.0,
    cache_creation: float = 1.0,
) -> PriceSnapshot:
    return PriceSnapshot(
        per_call=False,
        model_price=0.0,
        model_ratio=model_ratio,
        completion_ratio=completion,
        cache_ratio=cache,
        cache_creation_ratio=cache_creation,
        group_ratio=group,
        quota_per_unit=500_000,
    )


def call_price(model_price: float, group: float = 1.0) -> PriceSnapshot:
    return PriceSnapshot(
        per_call=True,
        model_price=model_price,
        model_ratio=0.0,
        completion_ratio=1.0,
        cache_ratio=1.0,
        cache_creation_ratio=1.0,
        group_ratio=group,
        quota_per_unit=500_000,
    )


def test_ratio_mode_settles_prompt_plus_weighted_completion() -> None:
    price = ratio_price(1.25, completion=4.0, group=1.5)
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=200)
    # (1000 + 200 * 4) * 1.25 * 1.5 = 3375
    assert settle_amount(price, usage) == 3375


def test_cached_tokens_are_billed_at_the_cache_ratio() -> None:
    price = ratio_price(2.0, completion=4.0, cache=0.5)
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=10, cached_tokens=600)
    # ((1000 - 600) + 600 * 0.5 + 10 * 4) * 2 = 1480
    assert settle_amount(price, usage) == 1480


def test_cache_creation_tokens_add_their_own_term() -> None:
    price = ratio_price(1.5, completion=5.0, cache=0.1, cache_creation=1.25)
    usage = TokenUsage(
        prompt_tokens=100, completion_tokens=10, cached_tokens=40, cache_creation_tokens=200
    )
    # (60 + 40 * 0.1 + 200 * 1.25 + 10 * 5) * 1.5 = 546
    assert settle_amount(price, usage) == 546


def test_rounding_happens_once_at_the_end() -> None:
    price = ratio_price(0.075, completion=4.0)
    usage = TokenUsage(prompt_tokens=7, completion_tokens=3)
    # per-term rounding would give round(0.525) + round(0.9) = 2; once: round(1.425) = 1
    assert settle_amount(price, usage) == 1
    # exact decimal: 0.075 * 30 = 2.25 -> 2 and 0.075 * 10 = 0.75 -> 1 (no float drift)
    assert settle_amount(price, TokenUsage(prompt_tokens=30)) == 2
    assert settle_amount(ratio_price(0.05), TokenUsage(prompt_tokens=50)) == 3  # 2.5 -> 3


def test_minimum_one_unit_when_priced_and_used() -> None:
    price = ratio_price(0.01)
    assert settle_amount(price, TokenUsage(prompt_tokens=1)) == 1
    assert settle_amount(ratio_price(0.0), TokenUsage(prompt_tokens=1000)) == 0


def test_empty_reply_is_not_billed() -> None:
    assert settle_amount(ratio_price(15.0), TokenUsage()) == 0
    assert settle_amount(call_price(0.04), TokenUsage()) == 0


def test_price_mode_charges_per_call_times_group() -> None:
    usage = TokenUsage(prompt_tokens=10, completion_tokens=5)
    assert settle_amount(call_price(0.04, group=1.5), usage) == 30_000
    assert settle_amount(call_price(0.04), TokenUsage(image_count=3)) == 60_000
    assert reserve_amount(call_price(0.04), prompt_tokens=0, max_output_tokens=0)


def test_the_hold_is_the_worst_case_of_prompt_and_output() -> None:
    price = ratio_price(1.25, completion=4.0, group=2.0)
    # (100 prompt + 300 output x completion ratio 4) x 1.25 x 2
    assert reserve_amount(price, prompt_tokens=100, max_output_tokens=300) == 3250
    worst = TokenUsage(prompt_tokens=100, completion_tokens=300)
    assert settle_amount(price, worst) == 3250
    assert reserve_amount(call_price(0.1), prompt_tokens=9, max_output_tokens=9) == 50_000


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", 4.0),
        ("gpt-4o-2024-05-13", 3.0),
        ("gpt-4o-mini", 4.0),
        ("gpt-4-turbo", 3.0),
        ("gpt-4", 2.0),
        ("o1", 4.0),
        ("o3-mini", 4.0),
        ("gpt-3.5-turbo", 3.0),
        ("claude-3-5-sonnet-20241022", 5.0),
        ("deepseek-chat", 4.0),
        ("gemini-1.5-pro", 4.0),
    ],
)
def test_locked_completion_ratio_families_win_over_options(model: str, expected: float) -> None:
    assert completion_ratio(model, {model: 9.0}) == expected


def test_completion_ratio_option_then_one() -> None:
    assert completion_ratio("my-model", {"my-model": 2.5}) == 2.5
    assert completion_ratio("other-model", {}) == 1.0


def test_table_resolves_price_mode_before_ratio_mode() -> None:
    table = build_table({"ModelPrice": '{"gpt-4o": 0.02}', "GroupRatio": '{"default": 1.5}'})
    price = table.resolve("gpt-4o", "default")
    assert price.per_call and price.model_price == 0.02 and price.group_ratio == 1.5
    ratio = table.resolve("gpt-4o-mini", "default")
    assert not ratio.per_call and ratio.model_ratio == 0.075 and ratio.completion_ratio == 4.0


def test_table_rejects_unpriced_models_and_groups() -> None:
    table = PricingTable(build_table({}).values)
    with pytest.raises(FailedPrecondition) as model_error:
        table.resolve("no-such-model", "default")
    assert model_error.value.code == "model_price_error"
    with pytest.raises(FailedPrecondition) as group_error:
        table.resolve("gpt-4o", "no-such-group")
    assert group_error.value.code == "group_not_priced"


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("ModelRatio", '{"gpt-4o": -1}'),
        ("ModelRatio", '{"gpt-4o": "1"}'),
        ("ModelRatio", "[1, 2]"),
        ("GroupRatio", "not json"),
        ("QuotaPerUnit", "1.5"),
        ("PreConsumedQuota", "-3"),
        ("NotAPricingKey", "{}"),
    ],
)
def test_invalid_pricing_options_are_rejected(key: str, raw: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_option(key, raw)
