"""Cloudflare Workers AI (39): the account id comes from `other`; OpenAI-compatible paths."""

from __future__ import annotations

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor


class CloudflareAdaptor(OpenAIAdaptor):
    default_base_url = "https://api.cloudflare.com"

    def url(self, target: Target) -> str:
        account = target.channel.other.strip()
        return f"{self.base_url(target)}/client/v4/accounts/{account}/ai" + target.endpoint.path
