"""Pure price math (upstream `relay/helper/price.go` and `service/quota.go`): Decimal arithmetic,
one rounding at the end, no I/O. Shared by
billing (settlement) and the relay (lease holds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.shared.pricing_rules import (
    CLAUDE_CACHE_CREATION_RATIO,
    IMAGE_USD_PER_RATIO,
    cache_creation_ratio,
    completion_ratio,
    image_quality_ratio,
    image_size_ratio,
    locked_completion_ratio,
)

__all__ = [
    "CLAUDE_CACHE_CREATION_RATIO",
    "KINDS",
    "PriceSnapshot",
    "TokenUsage",
    "cache_creation_ratio",
    "completion_ratio",
    "locked_completion_ratio",
    "reserve_amount",
    "settle_amount",
]

KINDS = frozenset({"", "text", "image", "tts", "stt", "rerank", "embedding", "audio", "task"})
# Non-text kinds whose hold is the price of the expected usage, not prompt + max_tokens.
ESTIMATED_KINDS = frozenset({"image", "tts", "stt", "task"})
# Speech to text: 1000 prompt tokens per minute of audio (upstream `service/quota.go`).
STT_TOKENS_PER_MINUTE = 1000


@dataclass(frozen=True, slots=True)
class PriceSnapshot:
    """Everything needed to price one request, frozen into the hold when it is placed."""

    per_call: bool
    model_price: float
    model_ratio: float
    completion_ratio: float
    cache_ratio: float
    cache_creation_ratio: float
    group_ratio: float
    quota_per_unit: int
    fallback: bool = False
    priced_model: str = ""
    audio_ratio: float = 1.0
    # None: audio output costs what text output costs (completion ratio).
    audio_completion_ratio: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PriceSnapshot:
        audio_completion = data.get("audio_completion_ratio")
        return cls(
            per_call=bool(data["per_call"]),
            model_price=float(data["model_price"]),
            model_ratio=float(data["model_ratio"]),
            completion_ratio=float(data["completion_ratio"]),
            cache_ratio=float(data["cache_ratio"]),
            cache_creation_ratio=float(data["cache_creation_ratio"]),
            group_ratio=float(data["group_ratio"]),
            quota_per_unit=int(data["quota_per_unit"]),
            fallback=bool(data.get("fallback", False)),
            priced_model=str(data.get("priced_model", "")),
            audio_ratio=float(data.get("audio_ratio", 1.0)),
            audio_completion_ratio=None if audio_completion is None else float(audio_completion),
        )


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Usage of one request. `cached_tokens` and `audio_input_tokens` are part of
    `prompt_tokens`, `audio_output_tokens` part of `completion_tokens` (OpenAI semantics);
    cache-creation tokens (Claude cache writes) are counted on top of `prompt_tokens`."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    image_count: int = 0
    characters: int = 0
    audio_seconds: float = 0.0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    image_size: str = ""
    image_quality: str = ""
    kind: str = ""

    @property
    def is_empty(self) -> bool:
        """Nothing was produced or consumed: not billed (Veloera's empty-reply rule in
        `service/quota.go`).
        """
        tokens = self.prompt_tokens + self.completion_tokens + self.cache_creation_tokens
        if self.kind == "task":
            return False  # a submitted task is billed per call
        return (
            tokens <= 0
            and self.image_count <= 0
            and self.characters <= 0
            and self.audio_seconds <= 0
        )


def _dec(value: float | int) -> Decimal:
    # Through str() so 0.075 is the decimal 0.075, not its binary approximation.
    return Decimal(str(value))


def _finish(amount: Decimal, *, priced: bool, billable: bool) -> int:
    """The single rounding (half away from zero), then the minimum of 1 unit."""
    quota = int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if priced and billable and quota <= 0:
        return 1
    return max(quota, 0)


def reserve_amount(
    price: PriceSnapshot,
    *,
    prompt_tokens: int,
    max_output_tokens: int,
    estimate: TokenUsage | None = None,
) -> int:
    """The hold placed before the upstream call: the request's worst case, so a settlement never
    needs more than was held. Text holds the prompt plus `max_output_tokens` (the request's
    max_tokens, else the model's output limit), each at the dearest weight it may be billed at
    (audio, cache reads and writes, audio output). Images, speech and tasks hold the price of the
    `estimate` (what the request asks for)."""
    if estimate is not None and estimate.kind in ESTIMATED_KINDS and not estimate.is_empty:
        return settle_amount(price, estimate)
    group = _dec(price.group_ratio)
    if price.per_call:
        amount = _dec(price.model_price) * _dec(price.quota_per_unit) * group
        return _finish(amount, priced=amount != 0, billable=True)
    prompt, output = max(prompt_tokens, 0), max(max_output_tokens, 0)
    completion = _dec(price.completion_ratio)
    audio_out = (
        completion
        if price.audio_completion_ratio is None
        else _dec(price.audio_ratio) * _dec(price.audio_completion_ratio)
    )
    prompt_weight = max(
        Decimal(1),
        _dec(price.audio_ratio),
        _dec(price.cache_ratio),
        _dec(price.cache_creation_ratio),
    )
    tokens = Decimal(prompt) * prompt_weight + Decimal(output) * max(completion, audio_out)
    ratio = _dec(price.model_ratio) * group
    return _finish(tokens * ratio, priced=ratio != 0, billable=prompt + output > 0)


def _image_factor(price: PriceSnapshot, usage: TokenUsage) -> Decimal:
    """size ratio x quality ratio x n."""
    model = price.priced_model
    return (
        _dec(image_size_ratio(usage.image_size))
        * _dec(image_quality_ratio(model, usage.image_quality, usage.image_size))
        * Decimal(max(usage.image_count, 1))
    )


def _per_call(price: PriceSnapshot, usage: TokenUsage) -> int:
    amount = _dec(price.model_price) * _dec(price.quota_per_unit) * _dec(price.group_ratio)
    if usage.kind == "image" or usage.image_count > 0:
        amount *= _image_factor(price, usage)
    return _finish(amount, priced=amount != 0, billable=True)


def _text_tokens(price: PriceSnapshot, usage: TokenUsage) -> Decimal:
    """Prompt and completion tokens weighted by the cache, completion and audio ratios."""
    prompt = max(usage.prompt_tokens, 0)
    cached = min(max(usage.cached_tokens, 0), prompt)
    audio_in = min(max(usage.audio_input_tokens, 0), prompt - cached)
    completion = max(usage.completion_tokens, 0)
    audio_out = min(max(usage.audio_output_tokens, 0), completion)
    audio = _dec(price.audio_ratio)
    completion_weight = _dec(price.completion_ratio)
    audio_out_weight = (
        completion_weight
        if price.audio_completion_ratio is None
        else audio * _dec(price.audio_completion_ratio)
    )
    return (
        Decimal(prompt - cached - audio_in)
        + Decimal(cached) * _dec(price.cache_ratio)
        + Decimal(max(usage.cache_creation_tokens, 0)) * _dec(price.cache_creation_ratio)
        + Decimal(audio_in) * audio
        + Decimal(completion - audio_out) * completion_weight
        + Decimal(audio_out) * audio_out_weight
    )


def _ratio_tokens(price: PriceSnapshot, usage: TokenUsage) -> Decimal:
    if usage.kind == "tts":
        return Decimal(max(usage.characters, 0))
    if usage.kind == "stt":
        seconds = _dec(max(usage.audio_seconds, 0.0))
        minutes_tokens = seconds * STT_TOKENS_PER_MINUTE / 60
        completion = Decimal(max(usage.completion_tokens, 0)) * _dec(price.completion_ratio)
        return minutes_tokens + completion
    return _text_tokens(price, usage)


def settle_amount(price: PriceSnapshot, usage: TokenUsage) -> int:
    """The final charge of a served request (upstream `service/quota.go`); empty usage costs
    nothing.
    """
    if usage.is_empty:
        return 0
    if price.per_call:
        return _per_call(price, usage)
    ratio = _dec(price.model_ratio) * _dec(price.group_ratio)
    tokens_reported = usage.prompt_tokens > 0 or usage.completion_tokens > 0
    if usage.image_count > 0 and not tokens_reported:
        # Priced from the model ratio per image, never the ~0 token math of upstream.
        amount = (
            _dec(IMAGE_USD_PER_RATIO)
            * ratio
            * _dec(price.quota_per_unit)
            * _image_factor(price, usage)
        )
        return _finish(amount, priced=ratio != 0, billable=True)
    tokens = _ratio_tokens(price, usage)
    return _finish(tokens * ratio, priced=ratio != 0, billable=tokens > 0)
