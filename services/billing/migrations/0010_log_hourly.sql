-- Hourly totals of the logs table (count, quota, tokens) per log type and per console filter:
-- every row (dim ''), per model, channel, group or user, and per pair of model, channel and
-- group (key: the values joined by U+001F, in the order model, channel, group, user). Kept by a statement
-- trigger in the inserting transaction (one upsert per INSERT statement, so settlement's batched
-- insert stays one extra statement), so they are exact at every commit. Stats and page totals
-- over whole hours read them; only the partial hours at the edges of a range read the logs.
CREATE TABLE log_hourly (
    dim    text        NOT NULL,  -- '', 'model', 'channel', 'group', 'user', 'model+group', ...
    key    text        NOT NULL,  -- the filter's value ('' for dim '')
    type   smallint    NOT NULL,
    hour   timestamptz NOT NULL,  -- start of the UTC hour
    count  bigint      NOT NULL DEFAULT 0,
    quota  bigint      NOT NULL DEFAULT 0,
    tokens bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (dim, key, type, hour)
);

-- Tables are qualified by schema: an importer or a maintenance session with another search_path
-- inserts into logs too.
CREATE FUNCTION billing.roll_up_logs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing.log_hourly AS h (dim, key, type, hour, count, quota, tokens)
    SELECT CASE GROUPING(model_name, channel_id, grp, user_id)
                WHEN 15 THEN '' WHEN 7 THEN 'model' WHEN 11 THEN 'channel' WHEN 13 THEN 'group'
                WHEN 14 THEN 'user' WHEN 3 THEN 'model+channel' WHEN 5 THEN 'model+group'
                WHEN 9 THEN 'channel+group' END,
           concat_ws(E'\x1f', model_name, channel_id::text, grp, user_id::text),
           type, hour, count(*), sum(quota), sum(prompt_tokens + completion_tokens)
    FROM (SELECT type, date_trunc('hour', created_at, 'UTC') AS hour, model_name, channel_id,
                 "group" AS grp, user_id, quota, prompt_tokens, completion_tokens
          FROM new_rows) r
    GROUP BY GROUPING SETS ((type, hour), (type, hour, model_name), (type, hour, channel_id),
                            (type, hour, grp), (type, hour, user_id),
                            (type, hour, model_name, channel_id), (type, hour, model_name, grp),
                            (type, hour, channel_id, grp))
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (dim, key, type, hour) DO UPDATE
        SET count = h.count + EXCLUDED.count,
            quota = h.quota + EXCLUDED.quota,
            tokens = h.tokens + EXCLUDED.tokens;
    RETURN NULL;
END
$$;

CREATE TRIGGER logs_roll_up
    AFTER INSERT ON logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION billing.roll_up_logs();

-- The channel usage trigger (0008) wrote `channel_usage` unqualified: a writer with another
-- search_path failed on it.
CREATE OR REPLACE FUNCTION billing.count_channel_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing.channel_usage AS c (channel_id, used_quota, request_count)
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

-- Partition maintenance names tables through dynamic SQL: pin its search_path to this schema.
ALTER FUNCTION billing.ensure_logs_partition(timestamptz) SET search_path FROM CURRENT;

-- The rollup rows of the logs created in [since, before): the backfill below and log deletion
-- (which rebuilds the hour it cuts through) insert them.
CREATE FUNCTION billing.log_hourly_between(since timestamptz, before timestamptz)
RETURNS TABLE (dim text, key text, type smallint, hour timestamptz, count bigint,
               quota numeric, tokens numeric)
LANGUAGE sql STABLE AS $$
    SELECT CASE GROUPING(model_name, channel_id, grp, user_id)
                WHEN 15 THEN '' WHEN 7 THEN 'model' WHEN 11 THEN 'channel' WHEN 13 THEN 'group'
                WHEN 14 THEN 'user' WHEN 3 THEN 'model+channel' WHEN 5 THEN 'model+group'
                WHEN 9 THEN 'channel+group' END,
           concat_ws(E'\x1f', model_name, channel_id::text, grp, user_id::text),
           type, hour, count(*), sum(quota), sum(prompt_tokens + completion_tokens)
    FROM (SELECT l.type, date_trunc('hour', l.created_at, 'UTC') AS hour, l.model_name,
                 l.channel_id, l."group" AS grp, l.user_id, l.quota, l.prompt_tokens,
                 l.completion_tokens
          FROM billing.logs l WHERE l.created_at >= since AND l.created_at < before) r
    GROUP BY GROUPING SETS ((type, hour), (type, hour, model_name), (type, hour, channel_id),
                            (type, hour, grp), (type, hour, user_id),
                            (type, hour, model_name, channel_id), (type, hour, model_name, grp),
                            (type, hour, channel_id, grp))
$$;

-- Existing history.
INSERT INTO log_hourly (dim, key, type, hour, count, quota, tokens)
SELECT * FROM billing.log_hourly_between('-infinity', 'infinity');
