"""What every billing use case is given: one small record built once at start (server.py) and
passed to plain functions, instead of one object owning every use case."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from nats.js import JetStreamContext

from services.billing.pricing.live import LivePrices


@dataclass(frozen=True, slots=True)
class Billing:
    pool: asyncpg.Pool
    prices: LivePrices
    js: JetStreamContext | None  # usage and quota-warning events; None: not published
    hold_ttl: int  # seconds a Reserve hold lives when the relay asks for no other time
