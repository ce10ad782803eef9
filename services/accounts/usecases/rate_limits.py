"""The RPC behind the console's rate limits (the web replicas share these counters)."""

from __future__ import annotations

import time

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import rate_limits
from services.accounts.deps import Deps


async def hit_rate_limit(deps: Deps, request: pb.HitRateLimitRequest) -> pb.HitRateLimitResponse:
    window = request.window_ms // 1000  # the windows are whole seconds
    rate_limits.check_request(request.scope, request.subject, request.limit, window)
    async with deps.pool.acquire() as conn:
        verdict = await rate_limits.hit(
            conn, scope=request.scope, subject=request.subject, limit=request.limit,
            window=window, now=time.time(),
        )  # fmt: skip
    return pb.HitRateLimitResponse(
        allowed=verdict.allowed, retry_after_ms=verdict.retry_after * 1000
    )
