"""OpenAI Realtime (`/v1/realtime`, a websocket) proxied both ways, metered per response
(upstream `relay/relay-realtime.go` / `relay/channel/openai/relay-openai.go`'s realtime
handler).

A session is admitted like a request (the key from `Authorization: Bearer` or, as browsers send
it, the `openai-insecure-api-key.<key>` subprotocol; the model from `?model=`; access, routing),
then holds the worst case of its next response before the upstream socket opens: a wallet that
cannot pay one response is refused. Frames pass both ways as they came (text and binary). Each
upstream `response.done` is settled on its own (its own log row, audio tokens priced apart),
and the hold for the next response is placed at once; when the wallet can no longer pay for
one, the client gets an `insufficient_quota` error event and both sockets close. A session
whose sockets stay silent for `RELAY_REALTIME_IDLE_SECONDS` is closed. A response still running
when a socket closes has no usage yet: its hold is released, not guessed at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp
import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from services.relay import endpoints as ep
from services.relay.adaptors.base import UsageCounts
from services.relay.adaptors.openai import usage_from
from services.relay.auth import AuthEntry, ParsedKey, parse_key
from services.relay.billing.charge import Charge
from services.relay.billing.settlement import settle
from services.relay.client import authorise, client_ip
from services.relay.errors import RelayError
from services.relay.ids import new_request_id
from services.relay.incoming import ClientRequest
from services.relay.job import Job, resolve
from services.relay.metering.meter import Metering
from services.relay.metrics import REQUESTS
from services.relay.routing.table import ChannelInfo, RoutingTable
from services.relay.state import RelayContext
from services.shared import channel_types as types

logger = logging.getLogger(__name__)

KEY_PROTOCOL = "openai-insecure-api-key."
SERVED_TYPES = frozenset({types.OPENAI, types.AZURE})
AZURE_API_VERSION = "2024-10-01-preview"
POLICY, UPSTREAM_GONE = 1008, 1011  # close codes: refused; the upstream failed
UNSENDABLE = frozenset({1005, 1006, 1015})  # close codes a close frame may not carry
CONNECT_SECONDS = 30.0
MAX_FRAME_BYTES = 16 * 1024 * 1024  # audio chunks are large; this bounds one frame


def error_event(type_: str, code: str, message: str) -> str:
    """An `error` server event, as the Realtime API sends it."""
    error = {"type": type_, "code": code, "message": message, "param": None}
    return orjson.dumps({"type": "error", "event_id": new_request_id(), "error": error}).decode()


def read_key(websocket: WebSocket) -> ParsedKey:
    header = websocket.headers.get("authorization", "")
    if not header:
        for protocol in websocket.scope.get("subprotocols", ()):
            if protocol.startswith(KEY_PROTOCOL):
                header = protocol.removeprefix(KEY_PROTOCOL)
    parsed = parse_key(header) if header else None
    if parsed is None:
        raise RelayError(401, "no API key provided", code="invalid_api_key")
    return parsed


def upstream_url(channel: ChannelInfo, model: str) -> tuple[str, dict[str, str]]:
    """The upstream websocket URL and its headers (the key goes here, never into a log)."""
    base = channel.base_url.rstrip("/")
    if channel.type == types.AZURE:
        version = channel.other.strip() or AZURE_API_VERSION
        url = f"{base}/openai/realtime?api-version={version}&deployment={model}"
        return _ws(url), {}
    url = f"{base or 'https://api.openai.com'}/v1/realtime?model={model}"
    return _ws(url), {"OpenAI-Beta": "realtime=v1"}


def _ws(url: str) -> str:
    return (
        "wss://" + url[8:] if url.startswith("https://") else "ws://" + url.removeprefix("http://")
    )


class Session:
    """One client socket, one upstream socket, and the hold of the response to come."""

    def __init__(self, ctx: RelayContext, websocket: WebSocket) -> None:
        self.ctx = ctx
        self.client = websocket
        self.model = websocket.query_params.get("model", "")
        self.started = time.perf_counter()
        self.last_input = 0  # the latest response's input tokens: the next one's at least
        self.output_limit = 0  # the session's max_response_output_tokens (0: the model's)
        self.job: Job | None = None  # the hold of the next response
        self.holding: asyncio.Task[None] | None = None  # a hold being placed
        self.active = time.monotonic()

    # ------------------------------------------------------------ admission and holds

    async def admit(self) -> tuple[AuthEntry, ChannelInfo, str, str]:
        """(the key's owner, the channel, the upstream model, the client address)."""
        table = self.ctx.snapshot.table
        if table is None:
            raise RelayError(503, "routing is not ready", code="not_ready")
        key = read_key(self.client)
        if not self.model:
            raise RelayError(400, "model is required", type_="invalid_request_error")
        ip = client_ip(self.client, table.options.reverse_proxy, self.ctx.settings.trusted_proxies)
        entry = await authorise(self.ctx, self.client, key, self.model, ip)
        channel, upstream_model = self._route(table, entry, key)
        return entry, channel, upstream_model, ip

    def _route(
        self, table: RoutingTable, entry: AuthEntry, key: ParsedKey
    ) -> tuple[ChannelInfo, str]:
        virtual = table.options.global_mapping.get(self.model)
        target = self.ctx.virtual.pick(self.model, virtual) if virtual else None
        route = resolve(table, entry.group, self.model, key.channel_id, target)
        if route.channel.type not in SERVED_TYPES:
            raise RelayError(
                400,
                f"model {self.model} is served by a channel without OpenAI's Realtime API",
                type_="invalid_request_error",
                code="unsupported_endpoint",
            )
        return route.channel, route.channel.upstream_model(route.routing_model)

    async def hold(self, entry: AuthEntry, channel: ChannelInfo, model: str, ip: str) -> None:
        """The next response's worst case: the input it will at least read (the last one's)
        and its output limit. Raises RelayError (403) when the wallet cannot pay it."""
        request_id = new_request_id()
        req = ClientRequest(endpoint=ep.REALTIME, model=self.model, raw=b"", stream=True)
        options = self.ctx.snapshot.table.options if self.ctx.snapshot.table else None
        assert options is not None, "admitted with a routing table"
        job = Job(
            request_id=request_id,
            started=time.perf_counter(),
            entry=entry,
            req=req,
            options=options,
            meter=Metering(prompt_tokens=self.last_input),
            routing_model=self.model,
            client_ip=ip,
            pinned=False,
            charge=Charge(self.ctx.biller, request_id),
        )
        job.tried.append(channel.id)
        job.max_output = await self.ctx.biller.reserve(
            request_id=request_id,
            user_id=entry.user.id,
            token_id=entry.token.id,
            model=model,
            group=entry.group,
            prompt_tokens=self.last_input,
            max_tokens=self.output_limit,
            requested_model=self.model,
            accept_unpriced=entry.accept_unpriced,
        )
        self.job = job

    def settle(self, channel: ChannelInfo, model: str, event: dict[str, Any]) -> None:
        """Charge the response `response.done` reports, on its own log row."""
        job, self.job = self.job, None
        if job is None:
            return
        response = event.get("response")
        raw = response.get("usage") if isinstance(response, dict) else None
        usage = usage_from(raw) or UsageCounts(estimated=True)
        self.last_input = usage.prompt_tokens
        first_ms = int((time.perf_counter() - job.started) * 1000)
        settle(job, channel, model, usage, first_response_ms=first_ms, interrupted=False)

    def release(self, reason: str) -> None:
        if self.job is not None:
            self.job.charge.release(reason)
            self.job = None

    # ------------------------------------------------------------ the two pumps

    def _watch_client_frame(self, text: str) -> None:
        """Remember the session's output limit (it sizes the holds)."""
        if '"session.update"' not in text:
            return
        with contextlib.suppress(orjson.JSONDecodeError):
            event = orjson.loads(text)
            session = event.get("session") if isinstance(event, dict) else None
            limit = session.get("max_response_output_tokens") if isinstance(session, dict) else None
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                self.output_limit = limit
            elif limit == "inf":
                self.output_limit = 0

    async def client_to_upstream(self, upstream: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            message = await self.client.receive()
            self.active = time.monotonic()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                self._watch_client_frame(message["text"])
                await upstream.send_str(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send_bytes(message["bytes"])

    async def upstream_to_client(
        self,
        upstream: aiohttp.ClientWebSocketResponse,
        entry: AuthEntry,
        channel: ChannelInfo,
        model: str,
        ip: str,
    ) -> int:
        """Relay until the upstream closes; the close code the client gets."""
        async for message in upstream:
            self.active = time.monotonic()
            if message.type == aiohttp.WSMsgType.TEXT:
                await self.client.send_text(message.data)
                if '"response.done"' in message.data and await self._done(
                    message.data, entry, channel, model, ip
                ):
                    return POLICY
            elif message.type == aiohttp.WSMsgType.BINARY:
                await self.client.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.ERROR:
                return UPSTREAM_GONE
        return upstream.close_code or 1000

    async def _done(
        self, text: str, entry: AuthEntry, channel: ChannelInfo, model: str, ip: str
    ) -> bool:
        """Settle a finished response and hold the next; True when the wallet is spent (the
        client was told)."""
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(event, dict) or event.get("type") != "response.done":
            return False
        self.settle(channel, model, event)
        # Shielded: a socket closing now cancels this pump, and a hold cut off half way
        # would be placed with nobody left to release it (`serve` waits for it instead).
        self.holding = asyncio.ensure_future(self.hold(entry, channel, model, ip))
        try:
            await asyncio.shield(self.holding)
        except RelayError as err:
            await self.client.send_text(
                error_event("insufficient_quota", err.code or "", err.message)
            )
            return True
        return False

    async def idle_watch(self, idle: float) -> None:
        while True:
            await asyncio.sleep(max(idle - (time.monotonic() - self.active), 0.05))
            if time.monotonic() - self.active >= idle:
                return


async def serve(ctx: RelayContext, websocket: WebSocket) -> None:
    """One Realtime session, from the handshake to both sockets closed."""
    session = Session(ctx, websocket)
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
    status = 101
    try:
        try:
            entry, channel, model, ip = await session.admit()
            await session.hold(entry, channel, model, ip)
        except RelayError as err:
            status = err.status
            kind = "insufficient_quota" if err.status == 403 else "invalid_request_error"
            await websocket.send_text(error_event(kind, err.code or "", err.message))
            await websocket.close(POLICY)
            return
        code = await _proxy(ctx, session, entry, channel, model, ip)
        if websocket.client_state is WebSocketState.CONNECTED:
            await websocket.close(code)
    except WebSocketDisconnect:
        pass
    finally:
        if session.holding is not None:
            await asyncio.gather(session.holding, return_exceptions=True)
        session.release("session closed")
        REQUESTS.labels("realtime", "", "", f"{status // 100}xx").inc()


async def _proxy(
    ctx: RelayContext,
    session: Session,
    entry: AuthEntry,
    channel: ChannelInfo,
    model: str,
    ip: str,
) -> int:
    """Open the upstream socket and pump both ways; the close code for the client."""
    url, headers = upstream_url(channel, model)
    key_id, key = ctx.keys.pick(channel)
    headers["api-key" if channel.type == types.AZURE else "Authorization"] = (
        key if channel.type == types.AZURE else f"Bearer {key}"
    )
    http, proxy = ctx.sessions.route(channel.setting.proxy)
    try:
        async with asyncio.timeout(CONNECT_SECONDS):
            upstream = await http.ws_connect(
                url,
                headers=headers,
                proxy=proxy or None,
                heartbeat=30.0,
                timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
                max_msg_size=MAX_FRAME_BYTES,
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning(
            "realtime upstream refused",
            extra={"channel_id": channel.id, "error": type(exc).__name__, "key_id": key_id},
        )
        await session.client.send_text(
            error_event("server_error", "upstream_unreachable", "the upstream refused the session")
        )
        return UPSTREAM_GONE
    async with upstream:
        pumps = [
            asyncio.ensure_future(session.client_to_upstream(upstream)),
            asyncio.ensure_future(session.upstream_to_client(upstream, entry, channel, model, ip)),
            asyncio.ensure_future(session.idle_watch(ctx.settings.realtime_idle_seconds)),
        ]
        try:
            done, _pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        first = done.pop()
        code = first.result() if first is pumps[1] and first.exception() is None else 1000
        if first is pumps[2]:
            message = "the session was idle too long"
            await session.client.send_text(error_event("invalid_request_error", "idle", message))
    if not isinstance(code, int) or code in UNSENDABLE:
        return UPSTREAM_GONE
    return code
