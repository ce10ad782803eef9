"""Process-wide resources of the relay, opened in the lifespan and shared by every request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from veloera.accounts.v1 import accounts_pb2, accounts_pb2_grpc, events_pb2
from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

import services
from services.relay.adaptors import Adaptors
from services.relay.auth import Authenticator
from services.relay.billing.biller import Biller
from services.relay.billing.deferral import publish_until_stored
from services.relay.health import responder as channel_probes
from services.relay.health.checks import Probing
from services.relay.metering import tokenizer
from services.relay.metering.media import MediaPolicy
from services.relay.metrics import CHANNEL_REPORTS, ERROR_LOGS
from services.relay.routing.snapshot import SnapshotStore
from services.relay.routing.table import KeyRotator
from services.relay.settings import Settings
from services.relay.tasks import poll as task_poll
from services.relay.upstream.http import Sessions, open_session, read_timeout
from services.shared import grpcutil, nats_auth, natsutil, subjects

logger = logging.getLogger(__name__)

REPORT_TIMEOUT = 5.0
WRITE_LOG_TIMEOUT = 5.0
PROBE_RPC_TIMEOUT = 10.0  # accounts reads and writes around a channel probe
MAX_PENDING_REPORTS = 1000
VELOERA_PROJ = Path(services.__file__).resolve().parent.parent / "VELOERA_PROJ"


class RoundRobin:
    """Per-name counters for the global virtual-model mapping (ties rotate)."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def pick(self, name: str, choices: tuple[str, ...]) -> str:
        if len(choices) == 1:
            return choices[0]
        index = self._next.get(name, 0)
        self._next[name] = index + 1
        return choices[index % len(choices)]


class RelayContext:
    """Everything a request handler needs; attributes are usable after `open()`."""

    http: aiohttp.ClientSession
    media_http: httpx.AsyncClient
    accounts: accounts_pb2_grpc.RelayAccountsServiceAsyncStub
    accounts_channel: grpc.aio.Channel
    billing_channel: grpc.aio.Channel
    auth: Authenticator
    biller: Biller
    billing: billing_pb2_grpc.RelayBillingServiceAsyncStub
    snapshot: SnapshotStore
    nats: NATS | None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = KeyRotator()
        self.virtual = RoundRobin()
        self.adaptors = Adaptors(
            settings.azure_api_version,
            any_token_uri=settings.channel_private_addresses,
            cohere_safety=settings.cohere_safety,
        )
        self.media = MediaPolicy(
            enabled=settings.get_media_token,
            enabled_non_stream=settings.get_media_token_not_stream,
            max_bytes=settings.max_file_download_bytes,
        )
        # Non-stream calls read within RELAY_TIMEOUT; streams within the idle timeout.
        self.plain_timeout = read_timeout(settings.relay_timeout)
        self.stream_timeout = read_timeout(settings.streaming_timeout)
        self.long_stream_timeout = read_timeout(settings.streaming_timeout * 2)
        self.veloera_text = VELOERA_PROJ.read_bytes()
        self.nats = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        s = self.settings
        self.http = open_session(allow_private=s.channel_private_addresses)
        self.sessions = Sessions(self.http)  # plus one per SOCKS5 proxy a channel names
        self.media_http = httpx.AsyncClient(follow_redirects=False)  # image downloads only
        self.accounts_channel = grpcutil.open_channel(s.accounts_addr, s.credential)
        self.billing_channel = grpcutil.open_channel(s.billing_addr, s.credential)
        accounts = accounts_pb2_grpc.RelayAccountsServiceStub(self.accounts_channel)
        self.accounts = accounts
        self.auth = Authenticator(accounts, ttl=s.auth_cache_seconds, max_size=s.auth_cache_size)
        self.snapshot = SnapshotStore(self.accounts_channel)
        self.nats = await natsutil.connect(
            s.nats_url, name="relay", user=nats_auth.RELAY, password=s.nats_password
        )
        js = self.nats.jetstream()
        try:
            await natsutil.ensure_streams(js)
        except Exception:
            logger.exception("could not ensure JetStream streams")
        self.billing = billing_pb2_grpc.RelayBillingServiceStub(self.billing_channel)
        self.biller = Biller(
            self.billing,
            js,
            settle_timeout=s.settle_timeout,
            hold_ttl_seconds=int(s.relay_timeout) + 120,
            leases=s.leases,
        )
        await self.nats.subscribe(subjects.ACCOUNTS_CHANGED, cb=self._on_change)
        await self.nats.subscribe(subjects.PRICES_CHANGED, cb=self._on_prices_changed)
        await task_poll.serve(
            self.nats,
            lambda: self.snapshot.table,
            lambda: self.sessions,
            self.keys,
            s.channel_private_addresses,
        )
        probing = Probing(
            accounts=accounts,
            session=self.http,
            timeout=s.channel_probe_timeout,
            rpc_timeout=PROBE_RPC_TIMEOUT,
            allow_private=s.channel_private_addresses,
        )
        await channel_probes.serve(self.nats, probing)
        await asyncio.to_thread(tokenizer.warm_up)
        await self.snapshot.load_initial(s.startup_timeout)
        self._spawn(self.snapshot.poll_forever(s.snapshot_refresh_seconds))
        # Connect to billing now, so the first request does not pay for it.
        self.billing_channel.get_state(try_to_connect=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if hasattr(self, "biller"):
            await self.biller.drain(self.settings.shutdown_grace_seconds)
        if self.nats is not None:
            await natsutil.drain(self.nats)
        if hasattr(self, "sessions"):
            await self.sessions.close()
        if hasattr(self, "media_http"):
            await self.media_http.aclose()
        for name in ("accounts_channel", "billing_channel"):
            channel = getattr(self, name, None)
            if channel is not None:
                await channel.close()

    def ready(self) -> bool:
        if getattr(self, "snapshot", None) is None or self.snapshot.table is None:
            return False
        ready = grpc.ChannelConnectivity.READY
        return (
            self.accounts_channel.get_state(try_to_connect=True) == ready
            and self.billing_channel.get_state(try_to_connect=True) == ready
        )

    def report_failure(self, request: accounts_pb2.ReportChannelResultRequest) -> None:
        """Tell accounts about a failed attempt (auto-disable), off the request path."""
        if len(self._tasks) >= MAX_PENDING_REPORTS:
            CHANNEL_REPORTS.labels("dropped").inc()
            return
        self._spawn(self._report(request))

    def write_log(self, entry: billing_pb2.LogEntry) -> None:
        """Write a log row (error rows) through billing, off the request path."""
        if len(self._tasks) >= MAX_PENDING_REPORTS:
            ERROR_LOGS.labels("dropped").inc()
            return
        self._spawn(self._write_log(entry))

    async def _write_log(self, entry: billing_pb2.LogEntry) -> None:
        try:
            await self.billing.WriteLog(
                billing_pb2.WriteLogRequest(entry=entry), timeout=WRITE_LOG_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            ERROR_LOGS.labels("error").inc()
            logger.warning("WriteLog failed: %s", exc.code().name)
            return
        ERROR_LOGS.labels("written").inc()

    async def _report(self, request: accounts_pb2.ReportChannelResultRequest) -> None:
        try:
            reply = await self.accounts.ReportChannelResult(request, timeout=REPORT_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            CHANNEL_REPORTS.labels("error").inc()
            logger.warning("ReportChannelResult failed: %s", exc.code().name)
            return
        if reply.key_disabled or reply.channel_disabled:
            CHANNEL_REPORTS.labels("disabled").inc()
            await self.snapshot.refresh_quietly()
        else:
            CHANNEL_REPORTS.labels("reported").inc()

    def hand_over_task(self, payload: bytes, request_id: str) -> None:
        """Store an accepted task's TaskSubmitted in JetStream in the background, retried until
        acknowledged (the task was charged: the tasks service must follow it, or a failure
        could never be refunded). `Nats-Msg-Id` keeps a retried publish stored once."""
        if self.nats is None:
            logger.error("accepted task not handed over: no NATS", extra={"request_id": request_id})
            return
        self._spawn(publish_until_stored(self.nats.jetstream(), payload, request_id))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_prices_changed(self, msg: Msg) -> None:
        self.biller.prices_changed()

    async def _on_change(self, msg: Msg) -> None:
        try:
            event = events_pb2.ChangeEvent.FromString(msg.data)
        except Exception:
            logger.warning("undecodable ChangeEvent dropped")
            return
        self.auth.clear()
        if event.routing_version > self.snapshot.version:
            self._spawn(self.snapshot.refresh_quietly())
