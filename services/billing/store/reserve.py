"""Reserve in one round trip: the `reserve_hold` PL/pgSQL function (migration 0006) does the
rate limits, the hold, the token budget, the wallet debit and the ledger row in one statement;
this module builds its arguments and maps its refusals to the domain errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from services.billing.store.holds import Hold
from services.billing.store.rate_limits import Limit, limited
from services.shared.db import Connection
from services.shared.errors import QuotaExhausted
from services.shared.pricing import PriceSnapshot

TOKEN_EXHAUSTED = "token_quota_exhausted"
USER_EXHAUSTED = "insufficient_user_quota"

RESERVE_HOLD = """
SELECT created, reserved_quota, reserved_subscription, reserved_token, created_at, expires_at,
       price, balance
FROM reserve_hold($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9::text[], $10::bigint[],
                  $11::bigint[], $12::bigint[], $13::bigint[])
"""


@dataclass(frozen=True, slots=True)
class ReserveInput:
    """The arguments of `reserve_hold`: one hold of `amount` at `price`."""

    request_id: str
    user_id: int
    token_id: int
    model: str
    group: str
    price: PriceSnapshot
    amount: int
    ttl_seconds: int


async def reserve(
    conn: Connection | asyncpg.Pool, *, spec: ReserveInput, limits: list[Limit]
) -> tuple[Hold, bool, int]:
    """(hold, created, user balance after). Runs as its own transaction when `conn` is the
    pool or a connection outside a transaction."""
    try:
        row = await conn.fetchrow(
            RESERVE_HOLD,
            spec.request_id,
            spec.user_id,
            spec.token_id,
            spec.model,
            spec.group,
            orjson.dumps(spec.price.to_json()).decode(),
            spec.amount,
            float(spec.ttl_seconds),
            [limit.scope for limit in limits],
            [limit.subject for limit in limits],
            [limit.period_seconds for limit in limits],
            [limit.max_requests for limit in limits],
            [limit.max_success for limit in limits],
        )
    except asyncpg.RaiseError as exc:
        raise refusal(exc, limits) from None
    assert row is not None
    price = spec.price if row["created"] else PriceSnapshot.from_json(orjson.loads(row["price"]))
    hold = _hold(spec, row, price)
    return hold, bool(row["created"]), int(row["balance"])


def _hold(spec: ReserveInput, row: asyncpg.Record, price: PriceSnapshot) -> Hold:
    created_at: datetime = row["created_at"]
    return Hold(
        request_id=spec.request_id,
        user_id=spec.user_id,
        token_id=spec.token_id,
        model=spec.model,
        group=spec.group,
        price=price,
        reserved_quota=row["reserved_quota"],
        reserved_subscription=row["reserved_subscription"],
        reserved_token=row["reserved_token"],
        status="open",
        created_at=created_at,
        expires_at=row["expires_at"],
        charged=0,
    )


def refusal(exc: asyncpg.RaiseError, limits: list[Limit]) -> Exception:
    """The domain error of a refusal raised by reserve_hold (anything else is re-raised)."""
    code = exc.message
    if code == USER_EXHAUSTED:
        return QuotaExhausted("user quota is not enough", code=USER_EXHAUSTED)
    if code == TOKEN_EXHAUSTED:
        return QuotaExhausted("token quota exhausted", code=TOKEN_EXHAUSTED)
    if code == "rate_limited":
        detail = orjson.loads(exc.detail or "{}")
        limit = limits[int(detail["index"])]
        return limited(
            limit, now=float(detail["now"]), oldest=float(detail["oldest"]), what=detail["what"]
        )
    return exc
