"""Jina (38): embeddings and rerank only (upstream `relay/channel/jina`). Jina's rerank API is
the format the relay's /v1/rerank speaks, and its embeddings API OpenAI's, so both pass through;
any other endpoint is refused rather than sent where Jina does not serve it."""

from __future__ import annotations

from services.relay.adaptors.base import Outgoing, Target, UpstreamRequest
from services.relay.adaptors.native import only
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import EMBEDDINGS, RERANK


class JinaAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = "https://api.jina.ai"

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, EMBEDDINGS, RERANK)
        return super().build_request(target, body)
