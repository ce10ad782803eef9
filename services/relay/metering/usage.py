"""Usage made safe to bill: odd reports completed by the local count, every count in range,
the completion within what the hold covers, and every change flagged."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from services.relay.adaptors.base import UsageCounts
from services.relay.adaptors.counts import USAGE_CEILING, within


def merged(reported: UsageCounts | None, local: Callable[[], UsageCounts]) -> UsageCounts:
    """Reported usage where it is usable, else the local count (flagged estimated).

    Usage that had odd counts keeps its good ones; its zeroed ones (negative, not a number)
    come from the local count, so an odd report never makes a request free.
    """
    usable = reported is not None and not reported.clamped
    if usable and reported is not None and (reported.prompt_tokens or reported.completion_tokens):
        return reported
    counted = local()
    if reported is None or not reported.clamped:
        return counted
    prompt = reported.prompt_tokens or counted.prompt_tokens
    completion = reported.completion_tokens or counted.completion_tokens
    estimated = (prompt, completion) != (reported.prompt_tokens, reported.completion_tokens)
    return replace(
        reported, prompt_tokens=prompt, completion_tokens=completion, estimated=estimated
    )


def bounded(usage: UsageCounts, cap: int) -> UsageCounts:
    """The usage to bill: every count in range, the completion at most `cap` (0: no cap),
    cached tokens within the prompt and reasoning tokens within the completion."""
    prompt = within(usage.prompt_tokens)
    completion = within(usage.completion_tokens)
    if cap > 0:
        completion = min(completion, cap)
    billed = replace(
        usage,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(within(usage.cached_tokens), prompt),
        cache_creation_tokens=within(usage.cache_creation_tokens),
        reasoning_tokens=min(within(usage.reasoning_tokens), completion),
        audio_input_tokens=min(within(usage.audio_input_tokens), prompt),
        audio_output_tokens=min(within(usage.audio_output_tokens), completion),
        image_count=within(usage.image_count),
        characters=within(usage.characters),
        audio_seconds=_seconds(usage.audio_seconds),
    )
    billed.clamped = usage.clamped or billed != usage
    return billed


def _seconds(value: float) -> float:
    return value if math.isfinite(value) and 0 <= value <= USAGE_CEILING else 0.0
