"""The set-based statements of batch settlement (metering/batch.py decides the amounts):
about eight per batch whatever its size, each over arrays of the batch's rows."""

from __future__ import annotations

from typing import Any

from services.billing.store.holds import COLUMNS, Hold, hold_of
from services.billing.store.logs import LogRow, insert_values
from services.billing.store.wallets import Balances, TokenState
from services.shared.db import Connection

LOCK_HOLDS = f"""
SELECT {COLUMNS} FROM holds WHERE request_id = ANY($1::text[]) ORDER BY request_id FOR UPDATE
"""
LOCK_BUDGETS = """
SELECT token_id, remain_quota, unlimited FROM token_budgets WHERE token_id = ANY($1::bigint[])
ORDER BY token_id FOR UPDATE
"""
UPDATE_BUDGETS = """
UPDATE token_budgets b SET used_quota = b.used_quota + v.used,
    remain_quota = b.remain_quota + v.remain_delta, updated_at = now()
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(token_id, used, remain_delta)
WHERE b.token_id = v.token_id
"""
LOCK_WALLETS = """
SELECT user_id, quota, subscription_quota FROM wallets WHERE user_id = ANY($1::bigint[])
ORDER BY user_id FOR UPDATE
"""
# The new balances are absolute: the rows are locked and were read in this transaction.
UPDATE_WALLETS_AND_LEDGER = """
WITH w AS (
    UPDATE wallets t SET quota = v.quota, subscription_quota = v.subscription,
        used_quota = t.used_quota + v.used, request_count = t.request_count + v.requests,
        updated_at = now()
    FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
        AS v(user_id, quota, subscription, used, requests)
    WHERE t.user_id = v.user_id
)
INSERT INTO ledger (user_id, idempotency_key, kind, delta_quota, delta_subscription,
                    balance_after, subscription_after, request_id, reason)
SELECT * FROM unnest($6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::bigint[],
                     $11::bigint[], $12::bigint[], $13::text[], $14::text[])
"""
INSERT_LOGS_AND_FINISH = """
WITH ins AS (
    INSERT INTO logs (user_id, type, content, username, token_name, model_name, quota,
                      prompt_tokens, completion_tokens, use_time, is_stream, channel_id,
                      channel_name, token_id, "group", other, client_ip, request_id, elapsed_ms)
    SELECT u.user_id, u.type, u.content, u.username, u.token_name, u.model_name, u.quota,
           u.prompt_tokens, u.completion_tokens, u.use_time, u.is_stream, u.channel_id,
           u.channel_name, u.token_id, u.grp, u.other::jsonb, u.client_ip, u.request_id,
           u.elapsed_ms
    FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::boolean[],
                $12::bigint[], $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[],
                $18::text[], $19::bigint[])
        AS u(user_id, type, content, username, token_name, model_name, quota, prompt_tokens,
             completion_tokens, use_time, is_stream, channel_id, channel_name, token_id, grp,
             other, client_ip, request_id, elapsed_ms)
    RETURNING id, request_id, quota
)
UPDATE holds h SET status = 'settled', charged = ins.quota, settled_at = now(), log_id = ins.id
FROM ins WHERE h.request_id = ins.request_id
RETURNING h.request_id, ins.id
"""
UPSERT_USAGE = """
INSERT INTO quota_data (user_id, username, model_name, created_at, token_used, count, quota)
SELECT v.user_id, v.username, v.model_name, date_trunc('hour', now()), v.tokens, v.n, v.quota
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
    AS v(user_id, username, model_name, tokens, n, quota)
ON CONFLICT (user_id, model_name, created_at) DO UPDATE SET
    token_used = quota_data.token_used + EXCLUDED.token_used,
    count = quota_data.count + EXCLUDED.count,
    quota = quota_data.quota + EXCLUDED.quota,
    username = CASE WHEN EXCLUDED.username = '' THEN quota_data.username
                    ELSE EXCLUDED.username END
"""
MARK_SUCCESS_MANY = "UPDATE rate_events SET success = true WHERE request_id = ANY($1::text[])"


async def lock_holds(conn: Connection, *, request_ids: list[str]) -> dict[str, Hold]:
    """The holds of these requests, locked in request id order."""
    return {row["request_id"]: hold_of(row) for row in await conn.fetch(LOCK_HOLDS, request_ids)}


async def lock_budgets(conn: Connection, *, token_ids: list[int]) -> dict[int, TokenState]:
    rows = await conn.fetch(LOCK_BUDGETS, token_ids)
    return {r["token_id"]: TokenState(r["remain_quota"], r["unlimited"]) for r in rows}


async def update_budgets(
    conn: Connection, *, token_ids: list[int], used: list[int], remain_deltas: list[int]
) -> None:
    await conn.execute(UPDATE_BUDGETS, token_ids, used, remain_deltas)


async def lock_wallets(conn: Connection, *, user_ids: list[int]) -> dict[int, Balances]:
    rows = await conn.fetch(LOCK_WALLETS, user_ids)
    return {r["user_id"]: Balances(r["quota"], r["subscription_quota"]) for r in rows}


async def write_wallets(
    conn: Connection,
    *,
    user_ids: list[int],
    quotas: list[int],
    subscriptions: list[int],
    used: list[int],
    requests: list[int],
    entries: list[tuple[Any, ...]],
) -> None:
    """The new absolute balances and one ledger row per entry (user_id, key, kind,
    delta_quota, delta_subscription, balance_after, subscription_after, request_id, reason)."""
    columns = list(zip(*entries, strict=True)) if entries else [()] * 9
    await conn.execute(
        UPDATE_WALLETS_AND_LEDGER,
        user_ids,
        quotas,
        subscriptions,
        used,
        requests,
        *[list(column) for column in columns],
    )


async def insert_logs_and_finish(conn: Connection, *, rows: list[LogRow]) -> dict[str, int]:
    """Insert the consume rows and mark their holds settled; request id -> log id."""
    columns: list[list[Any]] = [[] for _ in range(19)]
    for row in rows:
        for column, value in zip(columns, insert_values(row), strict=True):
            column.append(value)
    finished = await conn.fetch(INSERT_LOGS_AND_FINISH, *columns)
    return {r["request_id"]: r["id"] for r in finished}


async def upsert_usage(
    conn: Connection, *, rows: list[tuple[int, str, str, int, int, int]]
) -> None:
    """Hourly rollups: (user_id, username, model_name, tokens, requests, quota) per row."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    await conn.execute(UPSERT_USAGE, *columns)


async def mark_success(conn: Connection, *, request_ids: list[str]) -> None:
    """The rate-limit events of these requests count as successful."""
    await conn.execute(MARK_SUCCESS_MANY, request_ids)
