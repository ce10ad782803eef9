"""Runtime options owned by accounts: defaults, secret filtering and validation (upstream
`model/option.go`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from services.accounts.option_registry import (
    DEFAULT_USABLE_GROUPS,
    DEFAULTS,
    PREREQUISITES,
    REGISTRY,
    Kind,
    OptionSpec,
)
from services.shared.errors import FailedPrecondition, InvalidArgument
from services.shared.option_secrets import is_secret
from services.shared.options import PRICING_OPTION_KEYS, SHARED_OPTION_KEYS
from services.shared.sensitive import invalid_patterns

__all__ = ["DEFAULTS", "DEFAULT_USABLE_GROUPS", "check_prerequisites", "validate"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})
_FALLBACK_KEYS = frozenset(
    {
        "fallback_pricing_enabled",
        "fallback_single_price",
        "fallback_input_ratio",
        "fallback_completion_ratio",
    }
)
MAX_VALUE_LENGTH = 1_000_000


def masked(key: str, value: str) -> str:
    """The value as the audit log keeps it: secrets are never written down."""
    if not is_secret(key):
        return value
    return "" if not value else "***"


def merged(stored: dict[str, str]) -> dict[str, str]:
    """Defaults overlaid with the stored values (keys no longer registered are dropped)."""
    known = {key: value for key, value in stored.items() if key in REGISTRY}
    return {**DEFAULTS, **known}


def visible(options: dict[str, str], *, include_secrets: bool) -> dict[str, str]:
    if include_secrets:
        return dict(options)
    return {key: value for key, value in options.items() if not is_secret(key)}


def validate(key: str, value: str) -> str:
    """The normalised value to store for `key`; InvalidArgument when it cannot be stored."""
    if key in PRICING_OPTION_KEYS and key not in SHARED_OPTION_KEYS:
        raise InvalidArgument(f"option {key} is a pricing option: it is stored by billing")
    spec = REGISTRY.get(key)
    if spec is None:
        raise InvalidArgument(f"unknown option {key!r}", code="unknown_option")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidArgument(f"option {key} is too long")
    normalised = _parse(spec, value)
    if key == "global_model_mapping":
        check_global_mapping(normalised)
    if key == "SensitiveWords":
        check_sensitive_words(normalised)
    return normalised


def check_sensitive_words(text: str) -> None:
    """Every regex line must compile in RE2 (linear time): the relay cannot run the others."""
    bad = invalid_patterns(text)
    if bad:
        raise InvalidArgument(
            f"SensitiveWords: regex {bad[0]!r} is not supported (back-references and look-around "
            "cannot run in linear time)"
        )


def _parse(spec: OptionSpec, value: str) -> str:
    text = value.strip()
    if spec.kind is Kind.BOOL:
        lowered = text.lower()
        if lowered not in _TRUE | _FALSE:
            raise InvalidArgument(f"option {spec.key} must be true or false")
        return "true" if lowered in _TRUE else "false"
    if spec.kind in (Kind.INT, Kind.FLOAT):
        return _number(spec, text)
    if spec.kind is Kind.JSON_OBJECT:
        _json(spec.key, text or "{}", dict, "a JSON object")
        return text
    if spec.kind is Kind.JSON_LIST:
        _json(spec.key, text or "[]", list, "a JSON list")
        return text
    if spec.kind is Kind.LINES:
        return "\n".join(line.strip() for line in value.splitlines() if line.strip())
    if spec.kind is Kind.CSV:
        parts = [part.strip() for part in text.replace("\n", ",").split(",")]
        return ",".join(part for part in parts if part)
    if spec.choices is not None and text not in spec.choices:
        allowed = ", ".join(sorted(spec.choices))
        raise InvalidArgument(f"option {spec.key} must be one of: {allowed}")
    return value


def _number(spec: OptionSpec, text: str) -> str:
    try:
        number = int(text) if spec.kind is Kind.INT else float(text)
    except ValueError:
        kind = "an integer" if spec.kind is Kind.INT else "a number"
        raise InvalidArgument(f"option {spec.key} must be {kind}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidArgument(f"option {spec.key} must be a finite number")
    if spec.minimum is not None and number < spec.minimum:
        raise InvalidArgument(f"option {spec.key} must be at least {spec.minimum:g}")
    return str(number)


def _json(key: str, text: str, shape: type, what: str) -> Any:
    try:
        parsed = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"option {key} must be {what}: invalid JSON") from None
    if not isinstance(parsed, shape):
        raise InvalidArgument(f"option {key} must be {what}")
    return parsed


def check_global_mapping(text: str) -> None:
    """Shape `{"mapping": {virtual: [{"model": str, "priorities": int}, ...]}}` (upstream
    `middleware/distributor.go`).
    """
    root = _json("global_model_mapping", text or "{}", dict, "a JSON object")
    mapping = root.get("mapping", {})
    if not isinstance(mapping, dict):
        raise InvalidArgument("global_model_mapping.mapping must be an object")
    for virtual, targets in mapping.items():
        if not str(virtual).strip():
            raise InvalidArgument("global_model_mapping: a virtual model name is empty")
        if not isinstance(targets, list) or not targets:
            raise InvalidArgument(f"global_model_mapping[{virtual}] must be a non-empty list")
        for target in targets:
            _check_target(str(virtual), target)


def _check_target(virtual: str, target: Any) -> None:
    if not isinstance(target, dict):
        raise InvalidArgument(f"global_model_mapping[{virtual}] entries must be objects")
    model = target.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgument(f"global_model_mapping[{virtual}]: model must be a non-empty string")
    priorities = target.get("priorities", 0)
    if isinstance(priorities, bool) or not isinstance(priorities, int):
        raise InvalidArgument(f"global_model_mapping[{virtual}]: priorities must be an integer")


def check_prerequisites(key: str, value: str, current: dict[str, str]) -> None:
    """Cross-option rules: a toggle needs its credentials; fallback pricing must be coherent."""
    after = {**current, key: value}
    for toggle, needed in PREREQUISITES.items():
        if after.get(toggle) != "true" or (key != toggle and key not in needed):
            continue
        missing = [name for name in needed if not after.get(name, "").strip()]
        if missing:
            raise FailedPrecondition(
                f"{toggle} requires {', '.join(missing)} to be set first",
                code="option_prerequisite",
            )
    if key in _FALLBACK_KEYS:
        _check_fallback(after)


def _check_fallback(after: dict[str, str]) -> None:
    single = float(after.get("fallback_single_price") or 0)
    ratios = [float(after.get(name) or 0) for name in ("fallback_input_ratio",
                                                         "fallback_completion_ratio")]  # fmt: skip
    if single > 0 and any(r > 0 for r in ratios):
        raise FailedPrecondition(
            "fallback pricing: single price and ratios are mutually exclusive",
            code="option_prerequisite",
        )
    if (
        after.get("fallback_pricing_enabled") == "true"
        and single <= 0
        and not all(r > 0 for r in ratios)
    ):
        raise FailedPrecondition(
            "fallback pricing: set a single price, or both ratios above 0",
            code="option_prerequisite",
        )


def usable_groups(option_value: str, user_group: str) -> list[str]:
    """Keys of UserUsableGroups plus the user's own group (a broken value yields defaults)."""
    return list(usable_group_map(option_value, user_group))


def usable_group_map(option_value: str, user_group: str) -> dict[str, str]:
    """Group name -> description from UserUsableGroups, plus the user's own group."""
    try:
        parsed = json.loads(option_value)
    except ValueError:
        parsed = json.loads(DEFAULT_USABLE_GROUPS)
    groups = {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
    if user_group and user_group not in groups:
        groups[user_group] = "用户分组"
    return groups
