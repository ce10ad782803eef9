"""OpenAI and the OpenAI-compatible base: base URL + OpenAI path, Bearer auth, OpenAI usage.

Compatible channel types subclass `OpenAIAdaptor` and override `default_base_url`,
`url()`, `headers()` or `shape()`; the response side stays OpenAI's.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
import orjson

from services.relay.adaptors.base import (
    Json,
    Outgoing,
    StreamAccumulator,
    StreamConverter,
    Target,
    UpstreamRequest,
    UsageCounts,
    parse_error_body,
)
from services.relay.adaptors.counts import CountReader

_TEXT_FIELDS = ("content", "reasoning_content", "text")


def usage_from(raw: Any) -> UsageCounts | None:
    """OpenAI chat / completions / embeddings usage, Responses usage, rerank usage, Realtime's
    response.done usage; audio tokens apart (audio models bill them at their audio ratios)."""
    if not isinstance(raw, dict):
        return None
    reader = CountReader()
    prompt = reader.count(raw, "prompt_tokens", "input_tokens")
    completion = reader.count(raw, "completion_tokens", "output_tokens")
    if not prompt and not completion:
        prompt = reader.count(raw, "total_tokens")
    usage = UsageCounts(prompt_tokens=prompt, completion_tokens=completion)
    details = _details(raw, "prompt_tokens_details", "input_tokens_details", "input_token_details")
    usage.cached_tokens = reader.count(details, "cached_tokens")
    usage.audio_input_tokens = reader.count(details, "audio_tokens")
    if not usage.cached_tokens:  # DeepSeek
        usage.cached_tokens = reader.count(raw, "prompt_cache_hit_tokens")
    completion_details = _details(
        raw, "completion_tokens_details", "output_tokens_details", "output_token_details"
    )
    usage.reasoning_tokens = reader.count(completion_details, "reasoning_tokens")
    usage.audio_output_tokens = reader.count(completion_details, "audio_tokens")
    usage.clamped = reader.clamped
    return usage


def _details(raw: Json, *names: str) -> Json:
    """The first details object among `names` (chat, Responses and Realtime spell it apart)."""
    for name in names:
        value = raw.get(name)
        if isinstance(value, dict):
            return value
    return {}


def _has_text(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not value.isspace()


def encode_form(url: str, body: Outgoing) -> tuple[bytes, str]:
    """Multipart bytes and content type for a form (fields and files)."""
    files = [(f.field, (f.filename, f.data, f.content_type)) for f in body.files]
    request = httpx.Request("POST", url, data=dict(body.fields) or None, files=files or None)
    return request.read(), request.headers["content-type"]


class OpenAIAdaptor:
    supports_stream_options = True
    native_format = ""
    transport = "http"
    polls = False
    needs_token = False
    default_base_url = "https://api.openai.com"

    async def access_token(
        self, key: str, base_url: str, http: aiohttp.ClientSession, proxy: str
    ) -> str:
        return key  # never called: the key is the credential

    async def poll(
        self, target: Target, data: bytes, http: aiohttp.ClientSession, proxy: str
    ) -> bytes:
        return data  # never called: the answer is final

    # ------------------------------------------------------------ request side

    def base_url(self, target: Target) -> str:
        return (target.channel.base_url or self.default_base_url).rstrip("/")

    def url(self, target: Target) -> str:
        path = target.endpoint.path
        if target.endpoint.task == "responses" and target.channel.base_url.endswith("/"):
            # A base URL ending with `/` already names the API root (upstream `relay/relay-
            # text.go`).
            path = path.removeprefix("/v1")
        return self.base_url(target) + path

    def headers(self, target: Target) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {target.key}"}
        if target.channel.organization:
            headers["OpenAI-Organization"] = target.channel.organization
        return headers

    def shape(self, target: Target, body: Json) -> Json:
        """Type-specific body changes (the body is already a private copy)."""
        return body

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        url = self.url(target)
        headers = self.headers(target)
        headers["Accept"] = "text/event-stream" if target.stream else "application/json"
        if body.multipart:
            content, content_type = encode_form(url, body)
            headers["Content-Type"] = content_type
        else:
            headers["Content-Type"] = "application/json"
            if body.raw is not None:
                content = body.raw
            else:
                assert body.json is not None
                content = orjson.dumps(self.shape(target, body.json))
        if target.endpoint.binary:
            headers["Accept"] = "*/*"
        return UpstreamRequest(url, headers, content)

    # ------------------------------------------------------------ response side

    def stream_converter(self, target: Target) -> StreamConverter | None:
        return None  # OpenAI chunks already

    def parse_error(self, status: int, body: bytes) -> tuple[str, Json | None]:
        return parse_error_body(status, body)

    def convert_response(self, target: Target, data: bytes) -> bytes:
        return data

    def parse_usage(self, payload: Json) -> UsageCounts | None:
        usage = payload.get("usage")
        if usage is None:
            response = payload.get("response")  # Responses API final event
            if isinstance(response, dict):
                usage = response.get("usage")
        if usage is None:
            meta = payload.get("meta")  # Cohere-style rerank
            billed = meta.get("billed_units") if isinstance(meta, dict) else None
            if isinstance(billed, dict):
                reader = CountReader()
                prompt = reader.count(billed, "input_tokens", "search_units")
                return UsageCounts(prompt_tokens=prompt, clamped=reader.clamped)
        return usage_from(usage)

    def reply_text(self, payload: Json) -> tuple[str, int]:
        parts: list[str] = []
        calls = 0
        choices = payload.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            source = message if isinstance(message, dict) else choice
            for name in _TEXT_FIELDS:
                text = source.get(name)
                if isinstance(text, str):
                    parts.append(text)
            tool_calls = source.get("tool_calls")
            if isinstance(tool_calls, list):
                calls += len(tool_calls)
        output = payload.get("output")  # Responses API
        for item in output if isinstance(output, list) else ():
            content = item.get("content") if isinstance(item, dict) else None
            for part in content if isinstance(content, list) else ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    parts.append(part["text"])
        return "".join(parts), calls

    def reply_is_empty(self, payload: Json) -> bool:
        choices = payload.get("choices")
        if not isinstance(choices, list):
            return False  # not a chat reply (e.g. embeddings): never treated as empty
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            source = message if isinstance(message, dict) else choice
            if source.get("tool_calls") or source.get("function_call"):
                return False
            if any(_has_text(source.get(name)) for name in _TEXT_FIELDS):
                return False
        return True

    def accumulate_chunk(self, chunk: Json, acc: StreamAccumulator) -> bool:
        acc.chunks += 1
        usage = chunk.get("usage")
        if usage:
            acc.usage = usage_from(usage)
        choices = chunk.get("choices")
        if choices is None and "type" in chunk:
            return self._responses_event(chunk, acc)
        if not choices or not isinstance(choices, list):  # an upstream may send anything
            return isinstance(usage, dict)
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            source = delta if isinstance(delta, dict) else choice
            for name in _TEXT_FIELDS:
                text = source.get(name)
                if isinstance(text, str) and text:
                    acc.add_text(text)
            tool_calls = source.get("tool_calls")
            if isinstance(tool_calls, list):
                for call in tool_calls:
                    if not isinstance(call, dict):
                        continue
                    if call.get("id"):
                        acc.tool_calls += 1
                    function = call.get("function")
                    if isinstance(function, dict):
                        arguments = function.get("arguments")
                        if isinstance(arguments, str) and arguments:
                            acc.text_chars += len(arguments)
                            acc.parts.append(arguments)
        return False

    @staticmethod
    def _responses_event(chunk: Json, acc: StreamAccumulator) -> bool:
        kind = chunk.get("type")
        if kind == "response.output_text.delta":
            delta = chunk.get("delta")
            if isinstance(delta, str) and delta:
                acc.add_text(delta)
        elif kind == "response.completed":
            response = chunk.get("response")
            if isinstance(response, dict) and response.get("usage"):
                acc.usage = usage_from(response.get("usage"))
        elif kind == "response.output_item.added":
            item = chunk.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                acc.tool_calls += 1
        return False
