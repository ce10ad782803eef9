"""The price table in force in this process: loaded at start, reloaded when any replica
announces a change (core NATS `veloera.billing.prices_changed`) and every few seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from services.billing.pricing.options import validate_fallback
from services.billing.pricing.table import PricingTable, build_table, parse_option
from services.billing.store import pricing_options
from services.shared.crypto import SecretBox
from services.shared.option_secrets import plaintext_secrets, seal, unsealed

logger = logging.getLogger(__name__)


class LivePrices:
    """The process's cache of pricing options, refreshed on update and every few seconds so
    several billing replicas converge."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        refresh_seconds: float,
        box: SecretBox,
        announce: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._box = box  # EpayKey is stored encrypted (services.shared.option_secrets)
        self._refresh_seconds = refresh_seconds
        self._announce = announce  # tells every replica and relay that `key` changed
        self._table = build_table({})
        self._lock = asyncio.Lock()

    @property
    def table(self) -> PricingTable:
        return self._table

    async def refresh(self) -> None:
        async with self._lock:
            stored = await pricing_options.load(self._pool)
            self._table = build_table(unsealed(self._box, stored))

    async def seal_plaintext_secrets(self) -> list[str]:
        """Encrypt secrets stored in plaintext before encryption at rest (run at start)."""
        found = plaintext_secrets(await pricing_options.load(self._pool))
        for key, value in found.items():
            await pricing_options.reseal(self._pool, key=key, stored=seal(self._box, key, value))
        return sorted(found)

    async def update(self, *, key: str, raw: str, actor_id: int) -> str:
        """Validate, store and apply one option; returns its effective JSON text."""
        value = parse_option(key, raw)
        if key.startswith("fallback_"):
            validate_fallback({**self._table.values, key: value})
        await pricing_options.save(
            self._pool, key=key, raw=seal(self._box, key, raw), actor_id=actor_id
        )
        await self.refresh()
        if self._announce is not None:
            try:
                await self._announce(key)
            except Exception:  # the other replicas still catch up on their next refresh
                logger.warning("price change of %s not announced", key, exc_info=True)
        return self._table.option_text(key)

    async def refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception:  # the old table stays in use until the next refresh
            logger.warning("pricing refresh failed", exc_info=True)

    async def run_refresher(self) -> None:
        """Background loop: options changed by other replicas arrive as PRICES_CHANGED at
        once; this catches a missed announcement."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            await self.refresh_quietly()
