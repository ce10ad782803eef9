"""Upstream usage made safe to bill: odd counts clamped and flagged, the output cap applied."""

from __future__ import annotations

from typing import Any

import pytest

from services.relay.adaptors.base import UsageCounts
from services.relay.adaptors.counts import USAGE_CEILING, count_of
from services.relay.adaptors.openai import OpenAIAdaptor, usage_from
from services.relay.endpoints import CHAT
from services.relay.incoming import ClientRequest
from services.relay.metering.meter import Metering, usage_of_reply
from services.relay.metering.usage import bounded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, (7, False)),
        (0, (0, False)),
        (5.0, (5, False)),
        (-3, (0, True)),
        (2**63 + 5, (USAGE_CEILING, True)),
        (10**30, (USAGE_CEILING, True)),
        (1e30, (USAGE_CEILING, True)),
        (-1e30, (0, True)),
        (10.6, (11, True)),
        (float("nan"), (0, True)),
        (float("inf"), (USAGE_CEILING, True)),
        ("12", (0, True)),
        (True, (0, True)),
        (None, (0, True)),
        ([1], (0, True)),
    ],
)
def test_a_reported_count_becomes_a_bounded_int(value: Any, expected: tuple[int, bool]) -> None:
    assert count_of(value) == expected


def test_usage_with_bad_counts_is_flagged_and_absent_counts_are_not() -> None:
    odd = usage_from({"prompt_tokens": -1, "completion_tokens": 10**30})
    assert odd is not None and odd.clamped
    assert (odd.prompt_tokens, odd.completion_tokens) == (0, USAGE_CEILING)
    plain = usage_from({"prompt_tokens": 8, "total_tokens": 8})  # embeddings: no completion
    assert plain is not None and not plain.clamped
    assert (plain.prompt_tokens, plain.completion_tokens) == (8, 0)


def _reply(usage: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": "Hello there, friend"}
    return {"choices": [{"index": 0, "message": message}], "usage": usage}


def _billed(usage: Any) -> UsageCounts:
    req = ClientRequest(endpoint=CHAT, model="gpt-4o-mini", raw=b"")
    return usage_of_reply(req, Metering(prompt_tokens=9), OpenAIAdaptor(), _reply(usage), "m")


def test_unusable_counts_fall_back_to_the_local_count_field_by_field() -> None:
    usage = _billed({"prompt_tokens": 12, "completion_tokens": -4})
    assert usage.prompt_tokens == 12 and usage.completion_tokens > 0
    assert usage.clamped and usage.estimated
    both = _billed({"prompt_tokens": "x", "completion_tokens": None})
    assert both.prompt_tokens == 9 and both.completion_tokens > 0 and both.clamped


def test_missing_usage_is_counted_locally_without_the_clamp_flag() -> None:
    usage = _billed({})
    assert usage.estimated and not usage.clamped and usage.prompt_tokens == 9


def test_completion_is_capped_and_parts_stay_within_their_wholes() -> None:
    usage = UsageCounts(
        prompt_tokens=10, completion_tokens=200_000, cached_tokens=50, reasoning_tokens=199_000
    )
    capped = bounded(usage, 16)
    assert (capped.prompt_tokens, capped.completion_tokens) == (10, 16)
    assert (capped.cached_tokens, capped.reasoning_tokens) == (10, 16)
    assert capped.clamped
    assert usage.completion_tokens == 200_000  # the reported usage is left as it was


def test_usage_within_bounds_is_billed_as_reported() -> None:
    usage = UsageCounts(prompt_tokens=10, completion_tokens=16, cached_tokens=4)
    assert bounded(usage, 16) == usage and not bounded(usage, 0).clamped
    assert bounded(UsageCounts(completion_tokens=10**6), 0).completion_tokens == 10**6


def test_odd_non_token_units_are_bounded_too() -> None:
    usage = bounded(UsageCounts(image_count=-2, audio_seconds=float("nan")), 0)
    assert (usage.image_count, usage.audio_seconds, usage.clamped) == (0, 0.0, True)
