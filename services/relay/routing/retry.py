"""Retry policy of upstream `controller/relay.go`, as pure functions.

- `global.auto_retry_enabled` on: up to `global.auto_retry_count` retries, on the status codes
  of `global.auto_retry_status_codes` (never 408, 504, 524); empty answers always retry.
- Off: the reference would not retry at all on /v1; we keep `RELAY_RETRY_COUNT` (default 1)
  retries with the legacy rule (429, 307 and 5xx except 504/524; never 400 or 408), because
  one retry on another channel is what operators expect from a gateway with several channels.
- Never on local errors or a pinned channel. Retry i goes to priority tier i (i+1 with
  `auto_retry_force_channel_switch`), clamped to the lowest tier, on a channel not yet tried.
"""

from __future__ import annotations

from services.relay.options import NEVER_AUTO_RETRY, RelayOptions

EMPTY_RESPONSE = "empty_response"


def retry_budget(options: RelayOptions, default_count: int, *, pinned: bool) -> int:
    if pinned:
        return 0
    if options.auto_retry_enabled:
        return options.auto_retry_count
    return max(default_count, 0)


def legacy_should_retry(status: int) -> bool:
    if 200 <= status < 300 or status in (400, 408):
        return False
    return status not in (504, 524)


def should_retry(options: RelayOptions, status: int, *, empty: bool = False) -> bool:
    if options.auto_retry_enabled:
        if empty:
            return True
        if status in NEVER_AUTO_RETRY:
            return False
        return options.auto_retry_codes.matches(status)
    return empty or legacy_should_retry(status)


def start_tier(options: RelayOptions, retry_index: int) -> int:
    return retry_index + 1 if options.force_channel_switch else retry_index


def map_status(mapping: dict[int, int], status: int) -> int:
    return mapping.get(status, status) if mapping else status
