"""Single use of a value the browser brings back (a WebAuthn challenge, a Telegram login),
across every web replica: the first use within `seconds` is admitted, any later one refused.
It is counted with accounts' shared rate-limit windows (limit 1, keyed by the value's SHA-256),
so a challenge kept in the browser's signed cookie still works only once. Accounts being
unreachable fails the request (the endpoint answers in the envelope), never admits it."""

from __future__ import annotations

import hashlib

from veloera.accounts.v1 import accounts_pb2

from services.web.deps import Deps


async def first_use(deps: Deps, scope: str, value: str, seconds: int) -> bool:
    """True the first time `value` is used in `scope` within `seconds` (at most 86400)."""
    reply = await deps.accounts.HitRateLimit(
        accounts_pb2.HitRateLimitRequest(
            scope=scope, subject=hashlib.sha256(value.encode()).hexdigest(), limit=1,
            window_ms=seconds * 1000,
        ),
        timeout=deps.timeout,
    )  # fmt: skip
    return bool(reply.allowed)
