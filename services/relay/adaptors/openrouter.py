"""OpenRouter (20): OpenAI format with attribution headers."""

from __future__ import annotations

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor

REFERER = "https://github.com/Veloera/Veloera"
TITLE = "Veloera"


class OpenRouterAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = "https://openrouter.ai/api"

    def headers(self, target: Target) -> dict[str, str]:
        headers = super().headers(target)
        headers["HTTP-Referer"] = REFERER
        headers["X-Title"] = TITLE
        return headers
