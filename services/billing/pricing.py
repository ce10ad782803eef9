"""Pure price math (reference §4): Decimal arithmetic, one rounding at the end, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# Create-cache ratio for Claude is built in upstream (no option key for it).
CLAUDE_CACHE_CREATION_RATIO = 1.25


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PriceSnapshot:
        return cls(
            per_call=bool(data["per_call"]),
            model_price=float(data["model_price"]),
            model_ratio=float(data["model_ratio"]),
            completion_ratio=float(data["completion_ratio"]),
            cache_ratio=float(data["cache_ratio"]),
            cache_creation_ratio=float(data["cache_creation_ratio"]),
            group_ratio=float(data["group_ratio"]),
            quota_per_unit=int(data["quota_per_unit"]),
        )


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Usage of one request. `cached_tokens` are part of `prompt_tokens`; cache-creation tokens
    (Claude cache writes) are counted on top of `prompt_tokens`, as Anthropic reports them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    image_count: int = 0
    characters: int = 0
    audio_seconds: float = 0.0

    @property
    def is_empty(self) -> bool:
        """Nothing was produced or consumed: not billed (reference §4.7)."""
        tokens = self.prompt_tokens + self.completion_tokens + self.cache_creation_tokens
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
    price: PriceSnapshot, *, prompt_tokens: int, max_tokens: int, pre_consumed_quota: int
) -> int:
    """The hold placed before the upstream call (reference §4.3)."""
    group = _dec(price.group_ratio)
    if price.per_call:
        amount = _dec(price.model_price) * _dec(price.quota_per_unit) * group
        return _finish(amount, priced=amount != 0, billable=True)
    tokens = max(prompt_tokens, 0) + (max_tokens if max_tokens > 0 else pre_consumed_quota)
    ratio = _dec(price.model_ratio) * group
    return _finish(Decimal(tokens) * ratio, priced=ratio != 0, billable=tokens > 0)


def settle_amount(price: PriceSnapshot, usage: TokenUsage) -> int:
    """The final charge of a served request (reference §4.4); empty usage costs nothing."""
    if usage.is_empty:
        return 0
    group = _dec(price.group_ratio)
    if price.per_call:
        calls = max(usage.image_count, 1)
        amount = _dec(price.model_price) * _dec(price.quota_per_unit) * group * calls
        return _finish(amount, priced=amount != 0, billable=True)
    cached = min(max(usage.cached_tokens, 0), max(usage.prompt_tokens, 0))
    tokens = (
        Decimal(max(usage.prompt_tokens, 0) - cached)
        + Decimal(cached) * _dec(price.cache_ratio)
        + Decimal(max(usage.cache_creation_tokens, 0)) * _dec(price.cache_creation_ratio)
        + Decimal(max(usage.completion_tokens, 0)) * _dec(price.completion_ratio)
    )
    ratio = _dec(price.model_ratio) * group
    return _finish(tokens * ratio, priced=ratio != 0, billable=tokens > 0)


def locked_completion_ratio(model: str) -> float | None:
    """Hard-coded family rules that win over the CompletionRatio option (reference §4.2.4)."""
    name = model.lower()
    if name.startswith("gpt-4") and not name.endswith(("-all", "-gizmo-*")):
        if name.startswith("gpt-4o"):
            return 3.0 if name == "gpt-4o-2024-05-13" else 4.0
        if name.startswith(("gpt-4.1", "gpt-4.5")):
            return 4.0
        if name.startswith("gpt-4-turbo") or name.endswith("-preview"):
            return 3.0
        return 2.0
    if name.startswith(("o1", "o3", "o4")):
        return 4.0
    if name == "chatgpt-4o-latest":
        return 3.0
    return _locked_other_families(name)


def _locked_other_families(name: str) -> float | None:
    if "claude-instant-1" in name or "claude-2" in name:
        return 3.0
    if "claude-3" in name or "claude-4" in name or "claude-sonnet-4" in name:
        return 5.0
    if "claude-opus-4" in name:
        return 5.0
    if name.startswith("gpt-3.5"):
        if name == "gpt-3.5-turbo" or name.endswith("0125"):
            return 3.0
        if name.endswith("1106"):
            return 2.0
        return 4.0 / 3.0
    if name.startswith("gemini-"):
        if name.startswith("gemini-2.5-pro-preview"):
            return 8.0
        if name.startswith("gemini-2.5-flash-preview"):
            return 3.5 / 0.6
        return 4.0
    if name in {"deepseek-chat", "deepseek-reasoner"}:
        return 4.0
    if name.startswith(("ernie-speed-", "ernie-lite-")):
        return 2.0
    return None


def completion_ratio(model: str, configured: dict[str, float]) -> float:
    """Locked family rule, else the option value for the model, else 1."""
    locked = locked_completion_ratio(model)
    if locked is not None:
        return locked
    return float(configured.get(model, 1.0))


def cache_creation_ratio(model: str) -> float:
    return CLAUDE_CACHE_CREATION_RATIO if "claude" in model.lower() else 1.0
