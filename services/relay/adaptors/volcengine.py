"""VolcEngine Ark / Doubao (45): /api/v3 paths; `bot-` models use the bots endpoint."""

from __future__ import annotations

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import CHAT


class VolcEngineAdaptor(OpenAIAdaptor):
    default_base_url = "https://ark.cn-beijing.volces.com"

    def url(self, target: Target) -> str:
        base = self.base_url(target) + "/api/v3"
        if target.endpoint is CHAT and target.model.startswith("bot-"):
            return base + "/bots/chat/completions"
        return base + target.endpoint.path.removeprefix("/v1")
