"""Custom channels (8): the base URL is the full upstream URL, `{model}` substituted."""

from __future__ import annotations

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor


class CustomAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = ""

    def url(self, target: Target) -> str:
        return target.channel.base_url.replace("{model}", target.model)
