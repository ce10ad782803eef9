-- Logs become a range-partitioned table on created_at (monthly partitions, created ahead by
-- billing at start and by a periodic job; a default partition catches anything outside them).
-- Primary key and unique indexes must include the partition key, so the "one consume row per
-- request" rule is enforced by the hold (locked, status-checked) and holds.log_id instead.

ALTER TABLE logs RENAME TO logs_legacy;
ALTER INDEX logs_pkey RENAME TO logs_legacy_pkey;
DROP INDEX logs_user_id_idx;
DROP INDEX logs_created_at_idx;
DROP INDEX logs_type_id_idx;
DROP INDEX logs_consume_request_idx;
ALTER SEQUENCE logs_id_seq OWNED BY NONE;

CREATE TABLE logs (
    id bigint NOT NULL DEFAULT nextval('logs_id_seq'),
    user_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    type smallint NOT NULL,
    content text NOT NULL DEFAULT '',
    username text NOT NULL DEFAULT '',
    token_name text NOT NULL DEFAULT '',
    model_name text NOT NULL DEFAULT '',
    quota bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    use_time bigint NOT NULL DEFAULT 0,
    is_stream boolean NOT NULL DEFAULT false,
    channel_id bigint NOT NULL DEFAULT 0,
    channel_name text NOT NULL DEFAULT '',
    token_id bigint NOT NULL DEFAULT 0,
    "group" text NOT NULL DEFAULT '',
    other jsonb NOT NULL DEFAULT '{}'::jsonb,
    client_ip text NOT NULL DEFAULT '',
    request_id text,
    elapsed_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (created_at, id)
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE logs_id_seq OWNED BY logs.id;

-- Console filters: every filter column leads, then time and id for the keyset order.
CREATE INDEX logs_user_time_idx ON logs (user_id, created_at, id);
CREATE INDEX logs_username_time_idx ON logs (username, created_at, id);
CREATE INDEX logs_token_time_idx ON logs (token_name, created_at, id);
CREATE INDEX logs_model_time_idx ON logs (model_name, created_at, id);
CREATE INDEX logs_channel_time_idx ON logs (channel_id, created_at, id);
CREATE INDEX logs_group_time_idx ON logs ("group", created_at, id);
CREATE INDEX logs_type_time_idx ON logs (type, created_at, id);
CREATE INDEX logs_request_idx ON logs (request_id);

CREATE TABLE logs_default PARTITION OF logs DEFAULT;

-- Monthly partition covering `day`; idempotent. Rows already in the default partition for
-- that month are moved into the new partition.
CREATE FUNCTION ensure_logs_partition(day timestamptz) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    start_at timestamptz := date_trunc('month', day AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    end_at timestamptz := (date_trunc('month', day AT TIME ZONE 'UTC') + interval '1 month')
                          AT TIME ZONE 'UTC';
    part text := 'logs_' || to_char(day AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE logs INCLUDING DEFAULTS)', part);
    EXECUTE format(
        'WITH moved AS (DELETE FROM logs_default WHERE created_at >= %L AND created_at < %L '
        'RETURNING *) INSERT INTO %I SELECT * FROM moved', start_at, end_at, part);
    EXECUTE format('ALTER TABLE logs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, start_at, end_at);
    RETURN part;
END;
$$;

DO $$
DECLARE
    first_at timestamptz := COALESCE((SELECT min(created_at) FROM logs_legacy), now());
    month timestamptz := date_trunc('month', first_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
BEGIN
    WHILE month < now() + interval '3 months' LOOP
        PERFORM ensure_logs_partition(month);
        month := month + interval '1 month';
    END LOOP;
END;
$$;

INSERT INTO logs SELECT id, user_id, created_at, type, content, username, token_name, model_name,
    quota, prompt_tokens, completion_tokens, use_time, is_stream, channel_id, channel_name,
    token_id, "group", other, client_ip, request_id, elapsed_ms FROM logs_legacy;
UPDATE holds h SET log_id = l.id FROM logs_legacy l
    WHERE l.request_id = h.request_id AND l.type = 2 AND h.log_id IS NULL;
DROP TABLE logs_legacy;
