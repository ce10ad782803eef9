-- Quota each channel has served (upstream `model/channel.go` used_quota). Counted from the consume
-- log rows as they are inserted, in the same transaction as the settlement, so the single and
-- the batched settle paths both count exactly once.
CREATE TABLE channel_usage (
    channel_id    bigint PRIMARY KEY,
    used_quota    bigint      NOT NULL DEFAULT 0,
    request_count bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION count_channel_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO channel_usage AS c (channel_id, used_quota, request_count)
    SELECT channel_id, sum(quota), count(*)
    FROM new_rows
    WHERE type = 2 AND channel_id > 0 AND quota > 0
    GROUP BY channel_id
    ORDER BY channel_id
    ON CONFLICT (channel_id) DO UPDATE
        SET used_quota = c.used_quota + EXCLUDED.used_quota,
            request_count = c.request_count + EXCLUDED.request_count,
            updated_at = now();
    RETURN NULL;
END
$$;

CREATE TRIGGER logs_count_channel_usage
    AFTER INSERT ON logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_channel_usage();
