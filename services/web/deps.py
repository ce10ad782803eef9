"""Per-process dependencies of the web service: gRPC stubs opened in the lifespan."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from services.shared.channel_probes import ProbeClient
from services.web.nats_link import NatsLink
from services.web.settings import Settings

if TYPE_CHECKING:
    from veloera.accounts.v1.accounts_pb2_grpc import AccountsServiceAsyncStub
    from veloera.billing.v1.billing_pb2_grpc import BillingServiceAsyncStub


@dataclass(slots=True)
class Deps:
    """Everything a handler needs; lives on `app.state.deps` while the app runs."""

    settings: Settings
    accounts: AccountsServiceAsyncStub
    billing: BillingServiceAsyncStub
    channels: list[grpc.aio.Channel]
    tasks: NatsLink
    # Channel tests, balance queries and model lists, made by the relays (admin actions).
    probes: ProbeClient
    # Console jobs running in the background in this process ("test all", "update balances").
    background: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    started_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def timeout(self) -> float:
        return self.settings.rpc_timeout
