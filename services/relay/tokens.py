"""Cheap token estimates (characters / 4), used until a real tokenizer is wired in."""

from __future__ import annotations

from typing import Any

PER_MESSAGE = 3
CHARS_PER_TOKEN = 4
PER_TOOL_CALL = 7


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    total += len(text)
            elif isinstance(part, str):
                total += len(part)
        return total
    return 0


def estimate_prompt_tokens(messages: list[Any]) -> int:
    chars = 0
    for message in messages:
        if isinstance(message, dict):
            chars += _content_chars(message.get("content"))
    return chars // CHARS_PER_TOKEN + PER_MESSAGE * len(messages)


def estimate_completion_tokens(text_chars: int, tool_calls: int = 0) -> int:
    return (text_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + PER_TOOL_CALL * tool_calls
