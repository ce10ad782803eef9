"""Process-wide resources of the relay, opened in the lifespan and shared by every request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import grpc
import httpx
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from veloera.accounts.v1 import accounts_pb2_grpc, events_pb2
from veloera.billing.v1 import billing_pb2_grpc

import services
from services.relay.auth import Authenticator
from services.relay.billing import Biller
from services.relay.routing import KeyRotator
from services.relay.settings import Settings
from services.relay.snapshot import SnapshotStore
from services.shared import grpcutil, natsutil, subjects

logger = logging.getLogger(__name__)

VELOERA_PROJ = Path(services.__file__).resolve().parent.parent / "VELOERA_PROJ"


def http_timeouts(settings: Settings) -> tuple[httpx.Timeout, httpx.Timeout]:
    """(non-stream, stream) upstream timeouts; streams read with the idle timeout."""
    plain = httpx.Timeout(connect=10.0, read=settings.relay_timeout, write=60.0, pool=10.0)
    stream = httpx.Timeout(connect=10.0, read=settings.streaming_timeout, write=60.0, pool=10.0)
    return plain, stream


class RelayContext:
    """Everything a request handler needs; attributes are usable after `open()`."""

    http: httpx.AsyncClient
    accounts_channel: grpc.aio.Channel
    billing_channel: grpc.aio.Channel
    auth: Authenticator
    biller: Biller
    snapshot: SnapshotStore
    nats: NATS | None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = KeyRotator()
        self.plain_timeout, self.stream_timeout = http_timeouts(settings)
        self.veloera_text = VELOERA_PROJ.read_bytes()
        self.nats = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        s = self.settings
        self.http = httpx.AsyncClient(
            timeout=self.plain_timeout,
            limits=httpx.Limits(
                max_connections=4096, max_keepalive_connections=1024, keepalive_expiry=60.0
            ),
            follow_redirects=False,
        )
        self.accounts_channel = grpcutil.open_channel(s.accounts_addr)
        self.billing_channel = grpcutil.open_channel(s.billing_addr)
        accounts = accounts_pb2_grpc.AccountsServiceStub(self.accounts_channel)
        self.auth = Authenticator(accounts, ttl=s.auth_cache_seconds, max_size=s.auth_cache_size)
        self.snapshot = SnapshotStore(accounts)
        self.nats = await natsutil.connect(s.nats_url, name="relay")
        js = self.nats.jetstream()
        try:
            await natsutil.ensure_streams(js)
        except Exception:
            logger.exception("could not ensure JetStream streams")
        self.biller = Biller(
            billing_pb2_grpc.BillingServiceStub(self.billing_channel),
            js,
            settle_timeout=s.settle_timeout,
            hold_ttl_seconds=int(s.relay_timeout) + 120,
        )
        await self.nats.subscribe(subjects.ACCOUNTS_CHANGED, cb=self._on_change)
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
        if hasattr(self, "http"):
            await self.http.aclose()
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_change(self, msg: Msg) -> None:
        try:
            event = events_pb2.ChangeEvent.FromString(msg.data)
        except Exception:
            logger.warning("undecodable ChangeEvent dropped")
            return
        self.auth.clear()
        if event.routing_version > self.snapshot.version:
            self._spawn(self.snapshot.refresh_quietly())
