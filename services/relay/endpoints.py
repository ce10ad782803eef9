"""The relayed OpenAI endpoints: upstream path, body kind, default model and behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # metrics label and log name
    path: str  # OpenAI path, e.g. /v1/chat/completions
    required: str = ""  # body field that must be present
    default_model: str = ""
    multipart: bool = False
    streamable: bool = False
    chat: bool = False  # chat shaping (system prompt, o-series rules, empty-reply rule)
    binary: bool = False  # the answer is not JSON (audio/speech)
    kind: str = "text"  # billing's usage kind

    @property
    def task(self) -> str:
        """The path without `/v1/` (Azure deployment URLs, Cloudflare and friends)."""
        return self.path.removeprefix("/v1/")


CHAT = Endpoint("chat", "/v1/chat/completions", "messages", streamable=True, chat=True)
COMPLETIONS = Endpoint("completions", "/v1/completions", "prompt", streamable=True)
EMBEDDINGS = Endpoint("embeddings", "/v1/embeddings", "input", kind="embedding")
MODERATIONS = Endpoint(
    "moderations", "/v1/moderations", "input", default_model="text-moderation-stable"
)
IMAGES = Endpoint(
    "images", "/v1/images/generations", "prompt", default_model="dall-e", kind="image"
)
IMAGE_EDITS = Endpoint(
    "image_edits", "/v1/images/edits", default_model="dall-e", multipart=True, kind="image"
)
IMAGE_VARIATIONS = Endpoint(
    "image_variations",
    "/v1/images/variations",
    default_model="dall-e",
    multipart=True,
    kind="image",
)
SPEECH = Endpoint(
    "speech", "/v1/audio/speech", "input", default_model="tts-1", binary=True, kind="tts"
)
TRANSCRIPTIONS = Endpoint(
    "transcriptions",
    "/v1/audio/transcriptions",
    default_model="whisper-1",
    multipart=True,
    kind="stt",
)
TRANSLATIONS = Endpoint(
    "translations", "/v1/audio/translations", default_model="whisper-1", multipart=True, kind="stt"
)
RERANK = Endpoint("rerank", "/v1/rerank", "query", kind="rerank")
RESPONSES = Endpoint("responses", "/v1/responses", "input", streamable=True)
REALTIME = Endpoint("realtime", "/v1/realtime")  # a websocket (pipeline/realtime.py)

# Client path under /v1 (and /hf/v1) -> endpoint.
BY_PATH = MappingProxyType(
    {
        e.path.removeprefix("/v1"): e
        for e in (
            CHAT,
            COMPLETIONS,
            EMBEDDINGS,
            MODERATIONS,
            IMAGES,
            IMAGE_EDITS,
            IMAGE_VARIATIONS,
            SPEECH,
            TRANSCRIPTIONS,
            TRANSLATIONS,
            RERANK,
            RESPONSES,
        )
    }
)
