"""DeepSeek (43): FIM completions under /beta; cache-hit tokens are read as cached tokens."""

from __future__ import annotations

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import COMPLETIONS


class DeepSeekAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = "https://api.deepseek.com"

    def url(self, target: Target) -> str:
        if target.endpoint is COMPLETIONS:
            return self.base_url(target) + "/beta/completions"
        return self.base_url(target) + target.endpoint.path
