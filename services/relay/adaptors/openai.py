"""OpenAI and OpenAI-compatible channels: chat completions as-is, Bearer auth."""

from __future__ import annotations

from typing import Any

import orjson

from services.relay.adaptors.base import (
    Json,
    StreamAccumulator,
    UpstreamRequest,
    UsageCounts,
)
from services.relay.routing import ChannelInfo

CHAT_PATH = "/v1/chat/completions"


def usage_from(raw: Any) -> UsageCounts | None:
    if not isinstance(raw, dict):
        return None
    usage = UsageCounts(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
    )
    details = raw.get("prompt_tokens_details")
    if isinstance(details, dict):
        usage.cached_tokens = _int(details.get("cached_tokens"))
    elif "prompt_cache_hit_tokens" in raw:  # DeepSeek
        usage.cached_tokens = _int(raw.get("prompt_cache_hit_tokens"))
    completion_details = raw.get("completion_tokens_details")
    if isinstance(completion_details, dict):
        usage.reasoning_tokens = _int(completion_details.get("reasoning_tokens"))
    return usage


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _has_text(value: Any) -> bool:
    return isinstance(value, str) and not value.isspace() and value != ""


class OpenAIAdaptor:
    supports_stream_options = True

    def build_request(
        self, channel: ChannelInfo, key: str, body: Json, *, stream: bool
    ) -> UpstreamRequest:
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        return UpstreamRequest(
            channel.base_url.rstrip("/") + CHAT_PATH, headers, orjson.dumps(body)
        )

    def parse_usage(self, payload: Json) -> UsageCounts | None:
        return usage_from(payload.get("usage"))

    def reply_chars(self, payload: Json) -> int:
        total = 0
        choices = payload.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                for field in ("content", "reasoning_content"):
                    text = message.get(field)
                    if isinstance(text, str):
                        total += len(text)
        return total

    def reply_is_empty(self, payload: Json) -> bool:
        choices = payload.get("choices")
        if not isinstance(choices, list):
            return False  # not a chat reply (e.g. embeddings): never treated as empty
        for choice in choices:
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            if message.get("tool_calls") or message.get("function_call"):
                return False
            if _has_text(message.get("content")) or _has_text(message.get("reasoning_content")):
                return False
        return True

    def accumulate_chunk(self, chunk: Json, acc: StreamAccumulator) -> bool:
        acc.chunks += 1
        usage = chunk.get("usage")
        if usage:
            acc.usage = usage_from(usage)
        choices = chunk.get("choices")
        if not choices:
            return isinstance(usage, dict)
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            for field in ("content", "reasoning_content"):
                text = delta.get(field)
                if isinstance(text, str) and text:
                    acc.text_chars += len(text)
                    if not acc.has_text and not text.isspace():
                        acc.has_text = True
            tool_calls = delta.get("tool_calls")
            if isinstance(tool_calls, list):
                for call in tool_calls:
                    if isinstance(call, dict) and call.get("id"):
                        acc.tool_calls += 1
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        arguments = function.get("arguments")
                        if isinstance(arguments, str):
                            acc.text_chars += len(arguments)
        return False
