"""What a request is metered by (upstream `service/token_counter.go`, `service/quota.go`): local
prompt counts and usage units.

Billing computes the price; the relay reports tokens, images, characters and audio seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from veloera.billing.v1 import billing_pb2

from services.relay import endpoints as ep
from services.relay.adaptors.base import Adaptor, Json, StreamAccumulator, UsageCounts
from services.relay.incoming import ClientRequest
from services.relay.metering.audio import duration_seconds
from services.relay.metering.media import MediaPolicy, image_tokens
from services.relay.metering.tokenizer import (
    completion_tokens,
    count_input,
    count_messages,
    count_text,
    stt_tokens,
)
from services.relay.metering.usage import merged
from services.shared.numbers import ascii_int


@dataclass(slots=True)
class Metering:
    """Known before the upstream call: the local prompt count and the non-token units."""

    prompt_tokens: int = 0
    characters: int = 0
    audio_seconds: float = 0.0
    image_count: int = 0
    image_size: str = ""
    image_quality: str = ""

    def estimate(self, kind: str) -> billing_pb2.Usage | None:
        """What billing holds for non-text requests (the price of what is asked for)."""
        if kind not in ("image", "tts", "stt"):
            return None
        return billing_pb2.Usage(
            kind=kind,
            prompt_tokens=self.prompt_tokens if kind != "image" else 0,
            image_count=self.image_count,
            image_size=self.image_size,
            image_quality=self.image_quality,
            characters=self.characters,
            audio_seconds=self.audio_seconds,
        )


def _int_field(payload: dict[str, Any], name: str, default: int) -> int:
    value = payload.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    parsed = ascii_int(value) if isinstance(value, str) else None
    return default if parsed is None else parsed


async def meter_request(
    client: httpx.AsyncClient, req: ClientRequest, policy: MediaPolicy
) -> Metering:
    endpoint, payload, model = req.endpoint, req.payload, req.model
    if endpoint is ep.CHAT:
        messages = payload.get("messages") or []
        tokens = count_messages(messages, model)
        tools = payload.get("tools")
        if tools:
            tokens += count_text(str(tools), model)
        tokens += await image_tokens(client, messages, model, stream=req.stream, policy=policy)
        return Metering(prompt_tokens=tokens)
    if endpoint is ep.COMPLETIONS:
        return Metering(prompt_tokens=count_input(payload.get("prompt"), model))
    if endpoint in (ep.EMBEDDINGS, ep.MODERATIONS):
        return Metering(prompt_tokens=count_input(payload.get("input"), model))
    if endpoint is ep.RESPONSES:
        tokens = count_input(payload.get("input"), model)
        instructions = payload.get("instructions")
        if isinstance(instructions, str):
            tokens += count_text(instructions, model)
        return Metering(prompt_tokens=tokens)
    if endpoint is ep.RERANK:
        query = payload.get("query")
        tokens = count_text(query, model) if isinstance(query, str) else 0
        return Metering(prompt_tokens=tokens + count_input(payload.get("documents"), model))
    if endpoint is ep.SPEECH:
        text = payload.get("input")
        text = text if isinstance(text, str) else ""
        return Metering(prompt_tokens=count_text(text, model), characters=len(text))
    if endpoint in (ep.TRANSCRIPTIONS, ep.TRANSLATIONS):
        audio = next((f for f in req.files if f.field == "file"), req.files[0])
        seconds = duration_seconds(audio.data, audio.filename) or 0.0
        return Metering(prompt_tokens=stt_tokens(seconds), audio_seconds=seconds)
    if endpoint in (ep.IMAGES, ep.IMAGE_EDITS, ep.IMAGE_VARIATIONS):
        prompt = payload.get("prompt")
        tokens = count_text(prompt, model) if isinstance(prompt, str) else 0
        size, quality = payload.get("size"), payload.get("quality")
        return Metering(
            prompt_tokens=tokens,
            image_count=_int_field(payload, "n", 1),
            image_size=size if isinstance(size, str) else "",
            image_quality=quality if isinstance(quality, str) else "",
        )
    return Metering()


def usage_of_reply(
    req: ClientRequest, meter: Metering, adaptor: Adaptor, reply: Json | None, model: str
) -> UsageCounts:
    """Usage of a non-stream answer: upstream usage first, else the local count (estimated)."""
    endpoint = req.endpoint
    if endpoint is ep.SPEECH:
        return UsageCounts(prompt_tokens=meter.prompt_tokens, characters=meter.characters)
    if endpoint in (ep.TRANSCRIPTIONS, ep.TRANSLATIONS):
        return UsageCounts(prompt_tokens=meter.prompt_tokens, audio_seconds=meter.audio_seconds)
    if endpoint in (ep.IMAGES, ep.IMAGE_EDITS, ep.IMAGE_VARIATIONS):
        data = reply.get("data") if reply is not None else None
        count = len(data) if isinstance(data, list) else meter.image_count
        return UsageCounts(prompt_tokens=meter.prompt_tokens, image_count=count)
    if reply is None:
        return UsageCounts(prompt_tokens=meter.prompt_tokens, estimated=True)
    if adaptor.reply_is_empty(reply):
        return UsageCounts()
    answer = reply

    def local() -> UsageCounts:
        text, calls = adaptor.reply_text(answer)
        return UsageCounts(
            meter.prompt_tokens, completion_tokens(text, model, calls), estimated=True
        )

    return merged(adaptor.parse_usage(reply), local)


def usage_of_stream(acc: StreamAccumulator, meter: Metering, model: str) -> UsageCounts:
    """Usage of a stream: zero when nothing was said, else upstream usage or a local count."""
    if not acc.has_text and acc.tool_calls == 0:
        return UsageCounts()

    def local() -> UsageCounts:
        return UsageCounts(
            meter.prompt_tokens, completion_tokens(acc.text, model, acc.tool_calls), estimated=True
        )

    return merged(acc.usage, local)
