"""Billing math beyond text (upstream `relay/helper/price.go` and `service/quota.go`): audio,
images, speech, tasks, fallback
pricing, redirect billing, self-use mode and unpriced models."""

from __future__ import annotations

import pytest

from services.billing.pricing.table import PricingTable, build_table, parse_option
from services.shared.errors import FailedPrecondition, InvalidArgument
from services.shared.pricing import PriceSnapshot, TokenUsage, reserve_amount, settle_amount


def table(**options: str) -> PricingTable:
    return build_table(dict(options))


def test_audio_tokens_use_the_audio_ratios() -> None:
    price = table().resolve("gpt-4o-audio-preview", "default")
    assert (price.model_ratio, price.audio_ratio, price.audio_completion_ratio) == (1.25, 16, 2)
    usage = TokenUsage(
        prompt_tokens=1000, completion_tokens=500, audio_input_tokens=400, audio_output_tokens=300
    )
    # text in 600 + audio in 400*16 + text out 200*4 + audio out 300*16*2 = 17400; x1.25
    assert settle_amount(price, usage) == 21750


def test_audio_tokens_of_a_text_model_cost_what_text_costs() -> None:
    price = table().resolve("gpt-4o", "default")
    plain = TokenUsage(prompt_tokens=100, completion_tokens=50)
    audio = TokenUsage(
        prompt_tokens=100, completion_tokens=50, audio_input_tokens=30, audio_output_tokens=20
    )
    assert settle_amount(price, audio) == settle_amount(price, plain)


@pytest.mark.parametrize(
    ("size", "quality", "n", "expected"),
    [
        ("1024x1024", "standard", 1, 20_000),  # $0.04 x 500000
        ("1024x1024", "hd", 1, 40_000),  # hd x2
        ("1792x1024", "hd", 2, 120_000),  # size x2, hd x1.5 for wide sizes, n = 2
        ("256x256", "", 3, 24_000),  # x0.4 x3
        ("512x512", "standard", 1, 9_000),  # x0.45
    ],
)
def test_image_price_mode_uses_size_quality_and_n(
    size: str, quality: str, n: int, expected: int
) -> None:
    price = table().resolve("dall-e-3", "default")
    assert price.per_call and price.model_price == 0.04
    usage = TokenUsage(image_count=n, image_size=size, image_quality=quality, kind="image")
    assert settle_amount(price, usage) == expected
    assert reserve_amount(price, prompt_tokens=0, max_output_tokens=0, estimate=usage) == expected


def test_image_model_without_a_price_is_priced_from_its_ratio_per_image() -> None:
    price = table().resolve("dall-e-2", "default")  # ratio 8 -> 8 x $0.0025 = $0.02 per image
    assert not price.per_call
    usage = TokenUsage(image_count=2, image_size="1024x1024", kind="image")
    assert settle_amount(price, usage) == 20_000  # 2 x $0.02 x 500000, far from ~0
    assert settle_amount(price, TokenUsage(image_count=1, kind="image", image_size="256x256")) == (
        4_000
    )


def test_image_model_reporting_tokens_is_billed_by_tokens() -> None:
    price = table().resolve("gpt-image-1", "default")
    usage = TokenUsage(prompt_tokens=100, completion_tokens=1000, image_count=1, kind="image")
    assert settle_amount(price, usage) == round((100 + 1000 * 8) * 2.5)


def test_tts_is_billed_by_characters_and_stt_by_audio_seconds() -> None:
    tts = table().resolve("tts-1", "default")
    assert settle_amount(tts, TokenUsage(characters=1000, kind="tts")) == 7500
    stt = table().resolve("whisper-1", "default")
    # 90 s = 1500 tokens at ratio 15
    assert settle_amount(stt, TokenUsage(audio_seconds=90, kind="stt")) == 22_500
    held = reserve_amount(
        stt,
        prompt_tokens=0,
        max_output_tokens=0,
        estimate=TokenUsage(audio_seconds=90, kind="stt"),
    )
    assert held == 22_500


def test_rerank_and_embeddings_bill_prompt_tokens() -> None:
    rerank = table().resolve("rerank-english-v3.0", "default")
    assert settle_amount(rerank, TokenUsage(prompt_tokens=700, kind="rerank")) == 700
    embed = table().resolve("text-embedding-3-small", "default")
    assert settle_amount(embed, TokenUsage(prompt_tokens=10_000, kind="embedding")) == 100


def test_task_prices_are_per_call_with_the_documented_lookup_order() -> None:
    prices = table(ModelRatio='{"mj_blend": 0.3, "gpt-4": 15}')
    imagine = prices.resolve("mj_imagine", "default")  # from ModelPrice
    assert settle_amount(imagine, TokenUsage(kind="task")) == 50_000
    blend = prices.resolve("mj_blend", "default")  # ModelPrice default wins over the ratio
    assert blend.model_price == 0.1
    unknown = prices.resolve("suno_unknown_action", "default")  # neither: 0.1 USD
    assert settle_amount(unknown, TokenUsage(kind="task")) == 50_000
    ratio_named = build_table({"ModelPrice": "{}", "ModelRatio": '{"mj_blend": 0.3}'})
    assert ratio_named.resolve("mj_blend", "default").model_price == 0.3
    free = prices.resolve("mj_inpaint", "default")
    assert settle_amount(free, TokenUsage(kind="task")) == 0


def test_unpriced_model_fails_without_fallback_pricing() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        table().resolve("my-private-model", "default")
    assert caught.value.code == "model_price_error"


def test_fallback_single_price_prices_unpriced_models_only() -> None:
    prices = table(fallback_pricing_enabled="true", fallback_single_price="0.01")
    price = prices.resolve("my-private-model", "default")
    assert price.per_call and price.fallback and price.model_price == 0.01
    assert settle_amount(price, TokenUsage(prompt_tokens=5)) == 5000
    assert not prices.resolve("gpt-4o", "default").fallback


def test_fallback_ratios_and_self_use_mode_price_every_model() -> None:
    options = {
        "fallback_pricing_enabled": "true",
        "fallback_input_ratio": "2",
        "fallback_completion_ratio": "3",
    }
    price = table(**options).resolve("my-private-model", "default")
    assert (price.model_ratio, price.completion_ratio, price.fallback) == (2.0, 3.0, True)
    self_use = table(**options, SelfUseModeEnabled="true").resolve("gpt-4o", "default")
    assert (self_use.model_ratio, self_use.fallback) == (2.0, True)


def test_self_use_mode_or_the_user_setting_accept_unpriced_models_at_37_5() -> None:
    assert table(SelfUseModeEnabled="true").resolve("x-model", "default").model_ratio == 37.5
    accepted = table().resolve("x-model", "default", accept_unpriced=True)
    assert accepted.model_ratio == 37.5 and accepted.fallback


@pytest.mark.parametrize(
    "options",
    [
        {"fallback_single_price": "0.01", "fallback_input_ratio": "1"},
        {"fallback_pricing_enabled": "true"},
        {"fallback_pricing_enabled": "true", "fallback_input_ratio": "2"},
    ],
)
def test_invalid_fallback_combinations_are_disabled(options: dict[str, str]) -> None:
    prices = table(**options)
    assert prices.flag("fallback_pricing_enabled") is False
    with pytest.raises(FailedPrecondition):
        prices.resolve("my-private-model", "default")


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("fallback_single_price", "-1"),
        ("fallback_pricing_enabled", "maybe"),
        ("CheckInTimeZone", "Mars/Olympus"),
        ("ModelRequestRateLimitDurationMinutes", "0"),
        ("CheckInQuota", "-5"),
    ],
)
def test_invalid_extra_options_are_rejected(key: str, raw: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_option(key, raw)


def test_redirect_billing_picks_the_requested_or_upstream_name() -> None:
    plain = table()
    assert plain.priced_name(model="a", requested="req", upstream="up") == "up"
    assert plain.priced_name(model="a", requested="", upstream="") == "a"
    redirect = table(redirect_billing_enabled="true")
    assert redirect.priced_name(model="a", requested="req", upstream="up") == "req"


def test_default_table_covers_the_widely_used_families() -> None:
    prices = table()
    for model in [
        "gpt-4o",
        "claude-sonnet-4-20250514",
        "gemini-2.5-pro",
        "deepseek-chat",
        "qwen-max",
        "glm-4.5",
        "mistral-large-latest",
        "llama-3.3-70b-instruct",
    ]:
        assert prices.resolve(model, "default").model_ratio > 0, model


def test_old_hold_prices_without_new_fields_still_load() -> None:
    old = {
        "per_call": False,
        "model_price": 0,
        "model_ratio": 1,
        "completion_ratio": 2,
        "cache_ratio": 1,
        "cache_creation_ratio": 1,
        "group_ratio": 1,
        "quota_per_unit": 500000,
    }
    price = PriceSnapshot.from_json(old)
    assert settle_amount(price, TokenUsage(prompt_tokens=10, completion_tokens=10)) == 30
