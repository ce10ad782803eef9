"""Where a stream must stop: at the output tokens the request's hold covers.

Counting tokens on every chunk would cost a tokenizer call per chunk. A token is at least one
byte of UTF-8, so the delivered bytes bound the token count from above: the exact count runs
only once the bytes could have reached the cap, and then again only once enough new bytes
arrived to close the remaining gap.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from services.relay.adaptors.base import Json, StreamAccumulator, UsageCounts
from services.relay.metering.tokenizer import PER_TOOL_CALL, completion_tokens


class OutputCap:
    """Tells when a stream's delivered output reached `tokens` (counted as billing counts)."""

    __slots__ = ("_bytes", "_calls", "_model", "_recount_at", "_seen", "tokens")

    def __init__(self, tokens: int, model: str) -> None:
        self.tokens = tokens
        self._model = model
        self._seen = 0  # parts of the accumulator measured so far
        self._calls = 0
        self._bytes = 0
        self._recount_at = tokens  # the byte bound at which an exact count is worth it

    def reached(self, acc: StreamAccumulator) -> bool:
        parts = acc.parts
        if len(parts) == self._seen and acc.tool_calls == self._calls:
            return False
        for part in parts[self._seen :]:
            self._bytes += len(part) if part.isascii() else len(part.encode())
        self._seen = len(parts)
        self._calls = acc.tool_calls
        bound = self._bytes + PER_TOOL_CALL * self._calls
        if bound < self._recount_at:
            return False
        exact = completion_tokens(acc.text, self._model, self._calls)
        if exact >= self.tokens:
            return True
        self._recount_at = bound + self.tokens - exact
        return False


def cut_frames(meta: Json | None, choices: int, *, text: str, usage: UsageCounts) -> bytes:
    """The closing event of a stream cut at the cap: finish_reason "length" for every choice
    (chat and legacy completions), `response.incomplete` with reason max_output_tokens for the
    Responses API (what OpenAI sends when max_output_tokens is reached); other kinds just end."""
    meta = meta or {}
    if meta.get("type") == "response.created":
        return _responses_incomplete(meta, text, usage)
    kind = meta.get("object")
    if kind == "chat.completion.chunk":
        items: list[dict[str, Any]] = [
            {"index": i, "delta": {}, "finish_reason": "length"} for i in range(choices)
        ]
    elif kind == "text_completion":
        items = [
            {"index": i, "text": "", "finish_reason": "length", "logprobs": None}
            for i in range(choices)
        ]
    else:
        return b""
    chunk = {
        "id": meta.get("id", ""),
        "object": kind,
        "created": meta.get("created", int(time.time())),
        "model": meta.get("model", ""),
        "choices": items,
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _responses_incomplete(meta: Json, text: str, usage: UsageCounts) -> bytes:
    """The Responses API's terminal event for a cut stream, carrying the text sent so far and
    the billed usage, so SDKs and agents (Codex) see a finished, incomplete response."""
    created = meta.get("response")
    response: dict[str, Any] = dict(created) if isinstance(created, dict) else {}
    response.update(
        status="incomplete",
        incomplete_details={"reason": "max_output_tokens"},
        output=[
            {
                "id": f"msg_{response.get('id', '')}",
                "type": "message",
                "role": "assistant",
                "status": "incomplete",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        usage={
            "input_tokens": usage.prompt_tokens,
            "output_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        },
    )
    event = {"type": "response.incomplete", "response": response}
    return b"event: response.incomplete\ndata: " + orjson.dumps(event) + b"\n\n"
