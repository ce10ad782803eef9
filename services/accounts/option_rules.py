"""Runtime options owned by accounts: defaults, secret filtering and validation (§8.2)."""

from __future__ import annotations

import json
from types import MappingProxyType

from services.accounts.channel_rules import DEFAULT_DISABLE_KEYWORDS
from services.shared.errors import InvalidArgument
from services.shared.options import PRICING_OPTION_KEYS, SHARED_OPTION_KEYS

DEFAULT_USABLE_GROUPS = '{"default":"默认分组","vip":"vip分组"}'

DEFAULTS = MappingProxyType(
    {
        "UserUsableGroups": DEFAULT_USABLE_GROUPS,
        "SelfUseModeEnabled": "false",
        "DemoSiteEnabled": "false",
        "AutomaticDisableChannelEnabled": "false",
        "AutomaticEnableChannelEnabled": "false",
        "AutomaticDisableKeywords": "\n".join(DEFAULT_DISABLE_KEYWORDS),
        "ChannelDisableThreshold": "5",
        "RetryTimes": "0",
    }
)

# Options whose value must be a JSON object.
JSON_OBJECT_OPTIONS = frozenset(
    {
        "UserUsableGroups",
        "TopupGroupRatio",
        "global_model_mapping",
        "claude.model_headers_settings",
        "claude.default_max_tokens",
        "gemini.safety_settings",
        "gemini.version_settings",
    }
)
_SECRET_SUFFIXES = ("Token", "Secret", "Key", "_secret", "_token", "_key")
MAX_KEY_LENGTH = 128


def is_secret(key: str) -> bool:
    return key.endswith(_SECRET_SUFFIXES)


def merged(stored: dict[str, str]) -> dict[str, str]:
    """Defaults overlaid with the stored values."""
    return {**DEFAULTS, **stored}


def visible(options: dict[str, str], *, include_secrets: bool) -> dict[str, str]:
    if include_secrets:
        return dict(options)
    return {key: value for key, value in options.items() if not is_secret(key)}


def validate(key: str, value: str) -> None:
    """Raise InvalidArgument when `key`=`value` cannot be stored by accounts."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument(f"option key must be 1..{MAX_KEY_LENGTH} characters")
    if key in PRICING_OPTION_KEYS and key not in SHARED_OPTION_KEYS:
        raise InvalidArgument(f"option {key} is a pricing option: it is stored by billing")
    if key in JSON_OBJECT_OPTIONS:
        try:
            parsed = json.loads(value)
        except ValueError:
            raise InvalidArgument(f"option {key} must be a JSON object: invalid JSON") from None
        if not isinstance(parsed, dict):
            raise InvalidArgument(f"option {key} must be a JSON object")
    if key == "ReverseProxyProvider" and value not in {"", "nginx", "cloudflare"}:
        raise InvalidArgument("ReverseProxyProvider must be nginx or cloudflare")


def usable_groups(option_value: str, user_group: str) -> list[str]:
    """Keys of UserUsableGroups plus the user's own group (a broken value yields defaults)."""
    try:
        parsed = json.loads(option_value)
    except ValueError:
        parsed = json.loads(DEFAULT_USABLE_GROUPS)
    groups = [str(name) for name in parsed] if isinstance(parsed, dict) else []
    if user_group and user_group not in groups:
        groups.append(user_group)
    return groups
