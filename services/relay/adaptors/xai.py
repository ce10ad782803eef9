"""xAI (48): grok models take a `-high` / `-low` suffix as reasoning effort."""

from __future__ import annotations

from services.relay.adaptors.base import Json, Target
from services.relay.adaptors.openai import OpenAIAdaptor

_EFFORTS = ("high", "low")


class XAIAdaptor(OpenAIAdaptor):
    default_base_url = "https://api.x.ai"

    def shape(self, target: Target, body: Json) -> Json:
        model = body.get("model")
        if isinstance(model, str) and model.startswith("grok"):
            base, _, effort = model.rpartition("-")
            if effort in _EFFORTS and base:
                body["model"] = base
                body["reasoning_effort"] = effort
        return body
