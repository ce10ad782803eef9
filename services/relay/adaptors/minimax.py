"""MiniMax (35): chat on /v1/text/chatcompletion_v2, other endpoints on their OpenAI paths."""

from __future__ import annotations

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT


class MiniMaxAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = "https://api.minimax.chat"

    def url(self, target: Target) -> str:
        if target.endpoint is CHAT:
            return self.base_url(target) + "/v1/text/chatcompletion_v2"
        return self.base_url(target) + target.endpoint.path
