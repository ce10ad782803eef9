"""Billing under load: CheckLedger over gRPC, and settlement lag (response → log row)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import grpc
from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

from bench.stats import summarize
from services.shared import internal_auth
from services.shared.config import Secret
from services.shared.grpcutil import open_channel

_LOG_TIMES = """
SELECT request_id, extract(epoch FROM created_at)::float8 AS at
FROM billing.logs WHERE type = 2 AND request_id = ANY($1::text[])
"""
_OPEN_HOLDS = "SELECT count(*) FROM billing.holds WHERE status = 'open'"


async def check_ledger(billing_addr: str, admin_token: str) -> dict[str, Any]:
    """Every wallet's balance against the sum of its ledger entries (an operator-only RPC)."""
    credential = internal_auth.Credential(internal_auth.ADMIN, Secret(admin_token))
    channel = open_channel(billing_addr, credential)
    try:
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        reply = await stub.CheckLedger(billing_pb2.CheckLedgerRequest(), timeout=60.0)
    except grpc.aio.AioRpcError as exc:
        return {"error": f"{exc.code().name}: {exc.details()}"}
    finally:
        await channel.close()
    return {
        "consistent": reply.consistent,
        "wallets_checked": reply.wallets_checked,
        "mismatches": [
            {"user_id": m.user_id, "wallet_quota": m.wallet_quota, "ledger_sum": m.ledger_sum}
            for m in reply.mismatches[:10]
        ],
    }


async def settlement_lag(
    database_url: str, settled: list[tuple[str, float]], wait: float = 10.0
) -> dict[str, Any]:
    """Log row created_at minus the client's response-complete wall time, per request id.

    Waits up to `wait` seconds for the tail of the settlements to land. `created_at` is the
    settling transaction's start (PostgreSQL now()), so this slightly under-reports."""
    if not settled:
        return {"note": "no request ids recorded"}
    ended = dict(settled)
    ids = list(ended)
    conn = await asyncpg.connect(database_url, timeout=10.0)
    try:
        deadline = time.monotonic() + wait
        while True:
            rows = await conn.fetch(_LOG_TIMES, ids, timeout=30.0)
            if len(rows) >= len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        open_holds = int(await conn.fetchval(_OPEN_HOLDS, timeout=10.0))
    finally:
        await conn.close()
    lags = [float(row["at"]) - ended[str(row["request_id"])] for row in rows]
    return {
        "requests": len(ids),
        "logged": len(rows),
        "missing": len(ids) - len(rows),
        "lag_ms": summarize(lags, scale=1000),
        "open_holds_after": open_holds,
    }
