"""Request and reply text: chat content for the log row."""

from __future__ import annotations

from typing import Any

from services.relay import endpoints as ep
from services.relay.incoming import ClientRequest

SYSTEM_ROLES = ("system", "developer")


def text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _chat(messages: list[Any]) -> tuple[str, str, str]:
    """(input: the last user message, context: the other non-system messages, system)."""
    items = [m for m in messages if isinstance(m, dict)]
    last_user = max((i for i, m in enumerate(items) if m.get("role") == "user"), default=-1)
    system: list[str] = []
    context: list[str] = []
    for index, message in enumerate(items):
        role = str(message.get("role") or "")
        text = text_of(message.get("content"))
        if role in SYSTEM_ROLES:
            system.append(text)
        elif index != last_user:
            context.append(f"{role}: {text}")
    prompt = text_of(items[last_user].get("content")) if last_user >= 0 else ""
    return prompt, "\n".join(context), "\n".join(system)


def chat_content(req: ClientRequest, output: str) -> dict[str, str]:
    """The `other` keys input_content, output_content, context and system_prompt."""
    payload = req.payload
    prompt, context, system = "", "", ""
    if req.endpoint.chat:
        messages = payload.get("messages")
        prompt, context, system = _chat(messages if isinstance(messages, list) else [])
    elif req.endpoint is ep.RESPONSES:
        value = payload.get("input")
        if isinstance(value, list):
            prompt, context, system = _chat(value)
        else:
            prompt = text_of(value)
        instructions = payload.get("instructions")
        if isinstance(instructions, str) and instructions:
            system = "\n".join(filter(None, (instructions, system)))
    else:
        for name in ("prompt", "input", "query"):
            value = payload.get(name)
            if isinstance(value, str) and value:
                prompt = value
                break
    return {
        "input_content": prompt,
        "output_content": output,
        "context": context,
        "system_prompt": system,
    }
