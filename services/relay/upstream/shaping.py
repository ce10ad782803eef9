"""Request shaping before the adaptor (upstream `relay/relay-text.go` and the other relay paths):
pure functions on a body copy.
"""

from __future__ import annotations

from typing import Any

from services.relay.routing.table import ChannelInfo

Json = dict[str, Any]
EFFORT_SUFFIXES = ("-high", "-medium", "-low")
# Types that accept `stream_options` upstream (upstream `relay/relay-text.go`).
STREAM_OPTIONS_TYPES = frozenset({1, 3, 4, 14, 24, 33, 39, 45, 48})


def is_o_series(model: str) -> bool:
    return model.startswith(("o1", "o3", "o4"))


def split_effort(model: str) -> tuple[str, str]:
    """`o3-mini-high` → (`o3-mini`, `high`) for o-series models; else (model, "")."""
    if is_o_series(model):
        for suffix in EFFORT_SUFFIXES:
            if model.endswith(suffix):
                return model[: -len(suffix)], suffix[1:]
    return model, ""


def apply_system_prompt(body: Json, prompt: str) -> None:
    """Prepend the channel's system prompt to the first system message, or insert one."""
    messages = body.get("messages")
    if not prompt or not isinstance(messages, list):
        return
    messages = list(messages)
    body["messages"] = messages
    for index, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") == "system":
            content = message.get("content")
            merged = dict(message)
            if isinstance(content, str):
                merged["content"] = f"{prompt}\n\n{content}" if content else prompt
            elif isinstance(content, list):
                merged["content"] = [{"type": "text", "text": prompt + "\n\n"}, *content]
            else:
                merged["content"] = prompt
            messages[index] = merged
            return
    messages.insert(0, {"role": "system", "content": prompt})


def apply_o_series(body: Json, model: str, effort: str) -> None:
    """Reasoning effort, max_completion_tokens, no temperature, developer role (o1/o3)."""
    if effort:
        body["reasoning_effort"] = effort
    if not is_o_series(model):
        return
    if "max_tokens" in body:
        max_tokens = body.pop("max_tokens")
        body.setdefault("max_completion_tokens", max_tokens)
    body.pop("temperature", None)
    messages = body.get("messages")
    if model.startswith(("o1", "o3")) and isinstance(messages, list) and messages:
        first = messages[0]
        if isinstance(first, dict) and first.get("role") == "system":
            body["messages"] = [{**first, "role": "developer"}, *messages[1:]]


def apply_stream_options(
    body: Json, *, stream: bool, channel_type: int, supports: bool, force: bool
) -> None:
    if not stream or not supports or channel_type not in STREAM_OPTIONS_TYPES:
        body.pop("stream_options", None)
        return
    if force:
        options = body.get("stream_options")
        merged = dict(options) if isinstance(options, dict) else {}
        merged["include_usage"] = True
        body["stream_options"] = merged


def apply_param_override(body: Json, channel: ChannelInfo) -> None:
    if channel.param_override:
        body.update(channel.param_override)
