-- Usage rollups, redemption and gift codes, daily check-in, model request rate limits.

-- Hourly usage per user and model (upstream `model/usedata.go` quota_data), upserted at settlement.
CREATE TABLE quota_data (
    user_id bigint NOT NULL,
    username text NOT NULL DEFAULT '',
    model_name text NOT NULL,
    created_at timestamptz NOT NULL,  -- truncated to the hour
    token_used bigint NOT NULL DEFAULT 0,
    count bigint NOT NULL DEFAULT 0,
    quota bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, model_name, created_at)
);
CREATE INDEX quota_data_time_idx ON quota_data (created_at);
CREATE INDEX quota_data_username_idx ON quota_data (username, created_at);

-- Redemption and gift codes (upstream `model/redemption.go`).
CREATE TABLE redemptions (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL DEFAULT 0,
    key text NOT NULL UNIQUE,
    status smallint NOT NULL DEFAULT 1 CHECK (status IN (1, 2, 3)),
    name text NOT NULL DEFAULT '',
    quota bigint NOT NULL DEFAULT 100 CHECK (quota >= 0),
    created_time timestamptz NOT NULL DEFAULT now(),
    redeemed_time timestamptz,
    used_user_id bigint NOT NULL DEFAULT 0,
    valid_from bigint NOT NULL DEFAULT 0,
    valid_until bigint NOT NULL DEFAULT 0,
    is_gift boolean NOT NULL DEFAULT false,
    max_uses bigint NOT NULL DEFAULT 1,
    used_count bigint NOT NULL DEFAULT 0,
    -- The last use can never be taken twice, whatever the code path.
    CONSTRAINT redemptions_uses_within_max CHECK (max_uses < 0 OR used_count <= max_uses),
    CONSTRAINT redemptions_window CHECK (valid_from = 0 OR valid_until = 0
                                         OR valid_from < valid_until)
);
CREATE INDEX redemptions_name_idx ON redemptions (name);

-- One row per use; a gift code is redeemed at most once per user.
CREATE TABLE redemption_logs (
    id bigserial PRIMARY KEY,
    redemption_id bigint NOT NULL REFERENCES redemptions (id) ON DELETE CASCADE,
    user_id bigint NOT NULL,
    used_time timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT redemption_logs_once_per_user UNIQUE (redemption_id, user_id)
);

-- Daily check-in: at most one reward per user and calendar day (in the configured zone).
CREATE TABLE check_ins (
    user_id bigint NOT NULL,
    day date NOT NULL,
    quota bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, day)
);

-- Sliding-window log of model requests, shared by every billing replica (upstream
-- `middleware/model-rate-limit.go`).
CREATE TABLE rate_events (
    scope text NOT NULL,  -- 'user' or 'token'
    subject bigint NOT NULL,
    request_id text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    success boolean NOT NULL DEFAULT false,
    PRIMARY KEY (scope, subject, request_id)
);
CREATE INDEX rate_events_window_idx ON rate_events (scope, subject, at);
CREATE INDEX rate_events_request_idx ON rate_events (request_id);
CREATE INDEX rate_events_at_idx ON rate_events (at);

-- The consume log row of a settled hold (logs become partitioned: no global unique index).
ALTER TABLE holds ADD COLUMN log_id bigint;
