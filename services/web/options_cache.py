"""Accounts' options, cached in the web process for a few seconds; an option saved through
this process is seen by its next request (other web replicas see it within the TTL)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection
from veloera.accounts.v1 import accounts_pb2

from services.web.deps import Deps

TTL_SECONDS = 3.0


@dataclass(slots=True)
class OptionsCache:
    """The accounts options (secrets only with `include_secrets`); one refresh at a time,
    reused for `ttl` seconds."""

    ttl: float = TTL_SECONDS
    include_secrets: bool = False
    _values: dict[str, str] = field(default_factory=dict)
    _loaded_at: float = -1.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, deps: Deps) -> dict[str, str]:
        if self._fresh():
            return self._values
        async with self._lock:
            if not self._fresh():
                reply = await deps.accounts.ListOptions(
                    accounts_pb2.ListOptionsRequest(include_secrets=self.include_secrets),
                    timeout=deps.timeout,
                )
                self._values = {option.key: option.value for option in reply.options}
                self._loaded_at = time.monotonic()
        return self._values

    def invalidate(self) -> None:
        """Forget the values: the next `get` reads them from accounts."""
        self._loaded_at = -1.0

    def _fresh(self) -> bool:
        return self._loaded_at >= 0 and time.monotonic() - self._loaded_at < self.ttl


def options_cache(request: HTTPConnection) -> OptionsCache:
    """The process-wide cache, created on first use and kept on the app state."""
    cache: OptionsCache | None = getattr(request.app.state, "options_cache", None)
    if cache is None:
        cache = OptionsCache()
        request.app.state.options_cache = cache
    return cache


def secret_options_cache(request: HTTPConnection) -> OptionsCache:
    """Options with their secrets decrypted (Turnstile and OAuth client secrets), kept apart
    from the public cache so nothing that serves options to clients can show them."""
    cache: OptionsCache | None = getattr(request.app.state, "secret_options_cache", None)
    if cache is None:
        cache = OptionsCache(include_secrets=True)
        request.app.state.secret_options_cache = cache
    return cache


def forget_options(request: HTTPConnection) -> None:
    """After an option write: both caches reload on their next use, so the console, /api/status
    and the sign-in flows never disagree about what the administrator just saved."""
    options_cache(request).invalidate()
    secret_options_cache(request).invalidate()
