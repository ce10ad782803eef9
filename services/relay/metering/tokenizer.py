"""Local token counts (upstream `service/token_counter.go`): tiktoken-compatible cl100k / o200k,
fully offline.

The encodings ship inside the `bpe-openai` wheel (no download at run time). They load lazily,
once per process, on the first request that needs a local count.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import math
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

logger = logging.getLogger(__name__)

PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3
PER_TOOL_CALL = 7
CHARS_PER_TOKEN = 4
_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "o1", "o3", "o4", "gpt-4.1", "gpt-4.5", "gpt-5")


class _Counter(Protocol):
    def count(self, text: str) -> int: ...


@cache
def _bindings() -> ModuleType:
    """The wheel's Rust extension, loaded without the package's `__init__` (which builds
    pure-Python merge tables at import: slow, memory-hungry and not needed here)."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or spec.origin is None:
        raise RuntimeError("bpe-openai is not installed")
    folder = Path(spec.origin).parent
    library = next(folder.glob("_bindings*.so"))
    loader = importlib.machinery.ExtensionFileLoader("bpe_openai._bindings", str(library))
    ext_spec = importlib.util.spec_from_loader("bpe_openai._bindings", loader)
    assert ext_spec is not None
    module = importlib.util.module_from_spec(ext_spec)
    loader.exec_module(module)
    return module


class _CharEstimate:
    """Four characters per token: only when the tokenizer wheel is missing."""

    @staticmethod
    def count(text: str) -> int:
        return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@cache
def _encoder(name: str) -> _Counter:
    try:
        counter: _Counter = _bindings().tokenizer_for_encoding(name)
    except (RuntimeError, ImportError, OSError, StopIteration):
        logger.error("bpe-openai is not installed: token counts are estimated from characters")
        return _CharEstimate()
    return counter


def encoding_for(model: str) -> str:
    return "o200k_base" if model.startswith(_O200K_PREFIXES) else "cl100k_base"


def count_text(text: str, model: str = "") -> int:
    if not text:
        return 0
    return _encoder(encoding_for(model)).count(text)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def count_messages(messages: list[Any], model: str) -> int:
    """Text tokens of chat messages with OpenAI's per-message overhead (images not included)."""
    total = REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += PER_MESSAGE
        total += count_text(_content_text(message.get("content")), model)
        name = message.get("name")
        if isinstance(name, str) and name:
            total += count_text(name, model) + PER_NAME
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            for call in tool_calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    total += count_text(str(function.get("name") or ""), model)
                    total += count_text(str(function.get("arguments") or ""), model)
    return total


def count_input(value: Any, model: str) -> int:
    """`prompt` / `input` fields: a string, a list of strings, or a list of items with text."""
    if isinstance(value, str):
        return count_text(value, model)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += count_text(item, model)
            elif isinstance(item, dict):
                total += count_text(_content_text(item.get("content")), model)
                text = item.get("text")
                if isinstance(text, str):
                    total += count_text(text, model)
        return total
    return 0


def completion_tokens(text: str, model: str, tool_calls: int = 0) -> int:
    return count_text(text, model) + PER_TOOL_CALL * tool_calls


def stt_tokens(seconds: float) -> int:
    """Speech-to-text: 1000 tokens per minute of audio, whole seconds rounded up."""
    return round(math.ceil(seconds) * 1000 / 60) if seconds > 0 else 0


def estimate_completion_tokens(text_chars: int, tool_calls: int = 0) -> int:
    return (text_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + PER_TOOL_CALL * tool_calls


def warm_up() -> None:
    """Load both encodings now (a few tens of ms), not on the first request."""
    _encoder("cl100k_base")
    _encoder("o200k_base")
