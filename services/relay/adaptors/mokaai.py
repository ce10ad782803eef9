"""MokaAI M3E (44): embeddings only (upstream `relay/channel/mokaai`): POST `{base}/embeddings`
with `input` as a list of strings; the answer is OpenAI's embedding list. The base URL is the
operator's M3E server. Other endpoints are refused (upstream accepts them and then answers
nothing)."""

from __future__ import annotations

from typing import Any

from services.relay.adaptors.base import Outgoing, Target, UpstreamRequest
from services.relay.adaptors.native import canonical_body, only
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.endpoints import EMBEDDINGS
from services.relay.errors import RelayError


def _texts(value: Any) -> list[str]:
    """The input as the list of strings M3E takes (token-id inputs have no meaning to it)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise RelayError(
        400,
        "input must be a string or a list of strings for this channel",
        type_="invalid_request_error",
        code="invalid_input",
    )


class MokaAIAdaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = ""

    def url(self, target: Target) -> str:
        return self.base_url(target) + "/embeddings"

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        only(target.endpoint, EMBEDDINGS)
        payload = canonical_body(body)
        shaped = {"model": target.model, "input": _texts(payload.get("input"))}
        return super().build_request(target, Outgoing(json=shaped))
