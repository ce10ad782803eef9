"""SQL against our schemas (accounts, billing) and the importer's own `import` schema.

Written here rather than through billing's modules on purpose: the importer is a one-off batch
writer that must not depend on how billing's code is laid out. Every batch commits its rows and
their id mappings together, so an interrupted import resumes where it stopped and a second run
finds everything mapped and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

IMPORT_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS import;
-- Which source row became which of ours (users, tokens, channels, redemptions, options...).
CREATE TABLE IF NOT EXISTS import.id_map (
    source text NOT NULL,
    entity text NOT NULL,
    source_id text NOT NULL,
    target_id bigint NOT NULL,
    PRIMARY KEY (source, entity, source_id)
);
-- How far an append-only table (logs) has been copied: the last source id committed.
CREATE TABLE IF NOT EXISTS import.progress (
    source text NOT NULL,
    entity text NOT NULL,
    last_id bigint NOT NULL,
    PRIMARY KEY (source, entity)
);
-- Log pages committed past the watermark by the parallel writers of a run that did not finish.
CREATE TABLE IF NOT EXISTS import.log_pages (
    source text NOT NULL,
    first_id bigint NOT NULL,
    last_id bigint NOT NULL,
    PRIMARY KEY (source, first_id)
);
CREATE TABLE IF NOT EXISTS import.runs (
    id bigserial PRIMARY KEY,
    source text NOT NULL,
    product text NOT NULL,
    dry_run boolean NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    report jsonb
);
"""

# One import at a time per target database (session lock, held by the run's connection).
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext('veloera-import'))"

MAPPED = """
SELECT source_id, target_id FROM import.id_map
WHERE source = $1 AND entity = $2 AND source_id = ANY($3::text[])
"""
ALL_MAPPED = "SELECT source_id, target_id FROM import.id_map WHERE source = $1 AND entity = $2"
RECORD_MAP = """
INSERT INTO import.id_map (source, entity, source_id, target_id)
SELECT $1, $2, s, t FROM unnest($3::text[], $4::bigint[]) AS x(s, t)
"""
GET_PROGRESS = "SELECT last_id FROM import.progress WHERE source = $1 AND entity = $2"
SET_PROGRESS = """
INSERT INTO import.progress (source, entity, last_id) VALUES ($1, $2, $3)
ON CONFLICT (source, entity) DO UPDATE SET last_id = EXCLUDED.last_id
"""
LOG_PAGES = "SELECT first_id, last_id FROM import.log_pages WHERE source = $1 ORDER BY first_id"
ADD_LOG_PAGE = "INSERT INTO import.log_pages (source, first_id, last_id) VALUES ($1, $2, $3)"
FORGET_LOG_PAGES = "DELETE FROM import.log_pages WHERE source = $1"
START_RUN = "INSERT INTO import.runs (source, product, dry_run) VALUES ($1, $2, $3) RETURNING id"
FINISH_RUN = "UPDATE import.runs SET finished_at = now(), report = $2::jsonb WHERE id = $1"

TAKEN_USERNAMES = "SELECT username FROM accounts.users WHERE username = ANY($1::text[])"
TAKEN_AFF_CODES = "SELECT aff_code FROM accounts.users WHERE aff_code = ANY($1::text[])"
TAKEN_ACCESS_TOKENS = (
    "SELECT access_token_hash FROM accounts.users WHERE access_token_hash = ANY($1::text[])"
)
# Each identity column is unique among users (accounts migration 0006); the column is trusted.
IDENTITY_COLUMNS = (
    "github_id",
    "oidc_id",
    "wechat_id",
    "telegram_id",
    "linux_do_id",
    "idc_flare_id",
)


def taken_identities(column: str) -> str:
    if column not in IDENTITY_COLUMNS:
        raise ValueError(f"not an identity column: {column}")
    return f"SELECT {column} FROM accounts.users WHERE {column} = ANY($1::text[])"


INSERT_USERS = """
INSERT INTO accounts.users (username, password_hash, display_name, email, role, status, "group",
    aff_code, aff_count, inviter_id, setting, access_token_hash, github_id, oidc_id, wechat_id,
    telegram_id, linux_do_id, idc_flare_id, created_at, deleted_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[],
    $6::smallint[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[],
    $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::bigint[],
    $20::bigint[])
ON CONFLICT DO NOTHING
RETURNING id, username
"""
INSERT_WALLETS = """
INSERT INTO billing.wallets (user_id, quota, subscription_quota, used_quota, request_count,
                             aff_quota, aff_history)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[])
"""
# The opening balance: one ledger row per wallet with money in it, so the ledger invariant
# (balance == sum of deltas) holds from the first moment.
INSERT_OPENING = """
INSERT INTO billing.ledger (user_id, idempotency_key, kind, delta_quota, delta_subscription,
                            balance_after, subscription_after, reason)
SELECT u, k, 'import', q, s, q, s, r
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[]) AS x(u, k, q, s, r)
"""
NO_SETUP = "SELECT NOT EXISTS (SELECT 1 FROM accounts.setups)"
INSERT_SETUP = """
INSERT INTO accounts.setups (id, root_user_id, initialized_at) VALUES (1, $1, $2)
ON CONFLICT (id) DO NOTHING
"""

INSERT_TOKENS = """
INSERT INTO accounts.tokens (user_id, key_enc, key_hash, name, status, created_time,
    accessed_time, expired_time, unlimited_quota, model_limits_enabled, model_limits, allow_ips,
    "group", rate_limit_enabled, rate_limit_period, rate_limit_count, rate_limit_success)
SELECT u, ke, kh, n, st, ct, at, et, ul, mle,
       string_to_array(ml, E'\\n'), string_to_array(ips, E'\\n'), g, rle, rlp, rlc, rls
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::bigint[],
            $7::bigint[], $8::bigint[], $9::boolean[], $10::boolean[], $11::text[], $12::text[],
            $13::text[], $14::boolean[], $15::bigint[], $16::bigint[], $17::bigint[])
     AS x(u, ke, kh, n, st, ct, at, et, ul, mle, ml, ips, g, rle, rlp, rlc, rls)
ON CONFLICT (key_hash) DO NOTHING
RETURNING id, key_hash
"""
INSERT_BUDGETS = """
INSERT INTO billing.token_budgets (token_id, user_id, remain_quota, used_quota, unlimited)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::boolean[])
ON CONFLICT (token_id) DO NOTHING
"""

INSERT_CHANNEL = """
INSERT INTO accounts.channels (type, name, base_url, models, groups, priority, weight, status,
    model_mapping, status_code_mapping, model_prefix, system_prompt, tag, test_model,
    openai_organization, other, setting, param_override, auto_ban, created_time, test_time,
    response_time, balance, balance_updated_time, status_reason, status_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24, $25, $26)
RETURNING id
"""
INSERT_CHANNEL_KEYS = """
INSERT INTO accounts.channel_keys (channel_id, idx, key_enc, key_hash)
SELECT $1, i - 1, e, h FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS x(e, h, i)
"""
INSERT_ABILITIES = """
INSERT INTO accounts.abilities ("group", model, channel_id, priority, weight, enabled, tag)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                     $6::boolean[], $7::text[])
ON CONFLICT DO NOTHING
"""
BUMP_ROUTING = (
    "UPDATE accounts.routing_state SET version = version + 1 WHERE id = 1 RETURNING version"
)

INSERT_REDEMPTIONS = """
INSERT INTO billing.redemptions (user_id, key, status, name, quota, created_time, redeemed_time,
    used_user_id, valid_from, valid_until, is_gift, max_uses, used_count)
SELECT u, k, st, n, q, to_timestamp(ct), CASE WHEN rt > 0 THEN to_timestamp(rt) END, uu, vf, vu,
       g, mu, uc
FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::text[], $5::bigint[], $6::bigint[],
            $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::boolean[],
            $12::bigint[], $13::bigint[]) AS x(u, k, st, n, q, ct, rt, uu, vf, vu, g, mu, uc)
ON CONFLICT (key) DO NOTHING
RETURNING id, key
"""
INSERT_REDEMPTION_LOGS = """
INSERT INTO billing.redemption_logs (redemption_id, user_id, used_time)
SELECT r, u, to_timestamp(t) FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS x(r, u, t)
ON CONFLICT DO NOTHING
RETURNING id
"""

UPSERT_ACCOUNTS_OPTION = """
INSERT INTO accounts.options (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
"""
UPSERT_PRICING_OPTION = """
INSERT INTO billing.pricing_options (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
"""

ADD_QUOTA_DATA = """
INSERT INTO billing.quota_data AS q (user_id, username, model_name, created_at, token_used,
                                     count, quota)
SELECT u, max(n), m, to_timestamp(h), sum(t)::bigint, sum(c)::bigint, sum(q)::bigint
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
            $7::bigint[]) AS x(u, n, m, h, t, c, q)
GROUP BY u, m, h  -- one row per key: a statement may not update the same row twice
ORDER BY u, m, h
ON CONFLICT (user_id, model_name, created_at) DO UPDATE
    SET token_used = q.token_used + EXCLUDED.token_used, count = q.count + EXCLUDED.count,
        quota = q.quota + EXCLUDED.quota
"""
ENSURE_PARTITION = "SELECT billing.ensure_logs_partition(to_timestamp($1))"
LOG_COLUMNS = (
    "user_id", "created_at", "type", "content", "username", "token_name", "model_name", "quota",
    "prompt_tokens", "completion_tokens", "use_time", "is_stream", "channel_id", "channel_name",
    "token_id", "group", "other", "client_ip", "elapsed_ms",
)  # fmt: skip

# Checks for the final report, over the users this source brought in.
CHECK_OPENING = """
SELECT COALESCE(sum(l.delta_quota), 0) AS quota, COALESCE(sum(l.delta_subscription), 0)
       AS subscription
FROM import.id_map m JOIN billing.ledger l
  ON l.idempotency_key = 'import:' || m.source || ':user:' || m.source_id
WHERE m.source = $1 AND m.entity = 'users'
"""
WALLETS = """
SELECT user_id, quota, subscription_quota, used_quota FROM billing.wallets
WHERE user_id = ANY($1::bigint[])
"""
CHECK_LEDGER = """
SELECT count(*) FROM import.id_map m
JOIN billing.wallets w ON w.user_id = m.target_id
LEFT JOIN LATERAL (
    SELECT COALESCE(sum(delta_quota), 0) AS q, COALESCE(sum(delta_subscription), 0) AS s
    FROM billing.ledger WHERE user_id = w.user_id
) l ON true
WHERE m.source = $1 AND m.entity = 'users'
  AND (w.quota <> l.q OR w.subscription_quota <> l.s)
"""
CHECK_KEYS = """
SELECT count(*) FROM import.id_map m JOIN accounts.tokens t ON t.id = m.target_id
WHERE m.source = $1 AND m.entity = 'tokens' AND t.deleted_at IS NULL
"""


async def connect(dsn: str) -> Conn:
    """A connection to our database; billing first on the search path, because billing's
    functions and triggers (log partitions, channel usage) name their tables unqualified."""
    return await asyncpg.connect(
        dsn,
        timeout=30,
        server_settings={"search_path": "billing", "application_name": "veloera-import"},
    )


async def ensure_schema(conn: Conn) -> None:
    await conn.execute(IMPORT_SCHEMA)


async def mapped(conn: Conn, source: str, entity: str, ids: Iterable[str]) -> dict[str, int]:
    rows = await conn.fetch(MAPPED, source, entity, list(ids))
    return {row["source_id"]: row["target_id"] for row in rows}


async def all_mapped(conn: Conn, source: str, entity: str) -> dict[int, int]:
    """Numeric source id -> our id, for rewriting references (logs, redemptions)."""
    rows = await conn.fetch(ALL_MAPPED, source, entity)
    return {int(row["source_id"]): row["target_id"] for row in rows}


async def record(conn: Conn, source: str, entity: str, pairs: list[tuple[str, int]]) -> None:
    if pairs:
        await conn.execute(RECORD_MAP, source, entity, [p[0] for p in pairs], [p[1] for p in pairs])


async def progress(conn: Conn, source: str, entity: str) -> int:
    last: int | None = await conn.fetchval(GET_PROGRESS, source, entity)
    return last or 0
