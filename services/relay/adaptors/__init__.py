"""Channel adaptors by channel type."""

from __future__ import annotations

from services.relay.adaptors.base import Adaptor
from services.relay.adaptors.openai import OpenAIAdaptor

_OPENAI = OpenAIAdaptor()
# Channel types with their own wire format register here as they are added; every other type
# speaks OpenAI's chat-completions format.
_ADAPTORS: dict[int, Adaptor] = {}


def adaptor_for(channel_type: int) -> Adaptor:
    return _ADAPTORS.get(channel_type, _OPENAI)
