"""The state of one relayed request across its attempts, and channel resolution (upstream
`middleware/distributor.go`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from services.relay.auth import AuthEntry
from services.relay.billing.charge import Charge
from services.relay.endpoints import RESPONSES
from services.relay.errors import REQUEST_ID_HEADER, RelayError
from services.relay.incoming import ClientRequest
from services.relay.ingress.responses import chat_form
from services.relay.metering.meter import Metering
from services.relay.metrics import OVERHEAD_SECONDS
from services.relay.options import RelayOptions
from services.relay.routing.table import ChannelInfo, RoutingTable, pick_weighted

OVERHEAD_HEADER = "X-Veloera-Overhead-Ms"


def model_not_found(model: str) -> RelayError:
    """OpenAI's answer for a model that does not exist: SDKs do not retry a 404."""
    return RelayError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        type_="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def no_channel(model: str, group: str) -> RelayError:
    return RelayError(
        503,
        f"no available channel for model {model} in group {group}",
        code="no_available_channel",
    )


@dataclass(frozen=True, slots=True)
class Route:
    """Where the request goes first, and the model name channels know it by."""

    channel: ChannelInfo
    routing_model: str  # after prefix stripping / virtual mapping; retries select on it


def resolve(
    table: RoutingTable,
    group: str,
    model: str,
    pinned: int | None,
    virtual_target: str | None = None,
) -> Route:
    """Pinned channel, else channel prefix, else the global virtual mapping's model (already
    picked), else the tiers of the requested model."""
    if pinned is not None:
        channel = table.pinned(pinned)
        if channel is None:
            raise RelayError(
                403, f"channel {pinned} does not exist or is disabled", code="channel_unavailable"
            )
        return Route(channel, model)
    prefixed = table.prefixed(group, model)
    if prefixed is not None:
        stripped, pool = prefixed
        return Route(pick_weighted(pool), stripped)
    routing_model = virtual_target or model
    channel = table.select(group, routing_model)
    if channel is None:
        if not table.lists(routing_model):
            raise model_not_found(model)
        raise no_channel(model, group)
    return Route(channel, routing_model)


@dataclass(slots=True)
class Job:
    request_id: str
    started: float
    entry: AuthEntry
    req: ClientRequest
    options: RelayOptions
    meter: Metering
    routing_model: str
    client_ip: str
    pinned: bool
    charge: Charge  # the one settle or release of the request's hold
    max_output: int = 0  # output tokens the hold covers (0: no cap, e.g. images)
    effort: str = ""
    tried: list[int] = field(default_factory=list)
    last_channel: ChannelInfo | None = None  # the channel of the latest attempt
    upstream_wait: float = 0.0
    asked: ClientRequest | None = None  # the client's own form, when `req` may differ
    chat_only: bool = False  # every attempt sends the chat form (pseudo-streams)
    _chat: ClientRequest | None = None

    def __post_init__(self) -> None:
        self.asked = self.req

    def use_form(self, native: bool) -> None:
        """A Responses request goes as it came to a channel that speaks the Responses API
        (`native`) and as chat to any other; converted once, on the first such channel (a
        400 then when it uses what only Responses can carry)."""
        asked = self.asked
        if asked is None or asked.endpoint is not RESPONSES:
            return
        if native and not self.chat_only:
            self.req = asked
            return
        if self._chat is None:
            self._chat = chat_form(asked)
        self.req = self._chat

    @property
    def model(self) -> str:
        """The display name (what the client sent)."""
        return self.req.model

    @property
    def stream(self) -> bool:
        return self.req.stream

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def overhead_headers(self) -> dict[str, str]:
        overhead = max(time.perf_counter() - self.started - self.upstream_wait, 0.0)
        OVERHEAD_SECONDS.observe(overhead)
        return {REQUEST_ID_HEADER: self.request_id, OVERHEAD_HEADER: f"{overhead * 1000:.3f}"}
