"""Ollama (4): chat on its OpenAI-compatible /v1 path, embeddings on the native /api/embed."""

from __future__ import annotations

from typing import Any

import orjson

from services.relay.adaptors.base import Json, Target
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import EMBEDDINGS


class OllamaAdaptor(OpenAIAdaptor):
    default_base_url = "http://localhost:11434"

    def url(self, target: Target) -> str:
        if target.endpoint is EMBEDDINGS:
            return self.base_url(target) + "/api/embed"
        return self.base_url(target) + target.endpoint.path

    def shape(self, target: Target, body: Json) -> Json:
        if target.endpoint is EMBEDDINGS:
            native: Json = {"model": body.get("model"), "input": body.get("input")}
            if isinstance(body.get("dimensions"), int):
                native["dimensions"] = body["dimensions"]
            return native
        return body

    def convert_response(self, target: Target, data: bytes) -> bytes:
        if target.endpoint is not EMBEDDINGS:
            return data
        try:
            native = orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
        if not isinstance(native, dict) or not isinstance(native.get("embeddings"), list):
            return data
        vectors: list[Any] = native["embeddings"]
        prompt = native.get("prompt_eval_count")
        tokens = prompt if isinstance(prompt, int) else 0
        return orjson.dumps(
            {
                "object": "list",
                "model": native.get("model", target.model),
                "data": [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
