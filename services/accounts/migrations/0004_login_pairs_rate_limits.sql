-- Failed logins are also counted per (account, client address) pair: the pair is what gets
-- locked, so nobody can lock an account (root included) for everyone else.
ALTER TABLE login_failures DROP CONSTRAINT IF EXISTS login_failures_scope_check;
ALTER TABLE login_failures ADD CONSTRAINT login_failures_scope_check
    CHECK (scope IN ('user', 'ip', 'pair'));

-- Sliding-window request counters of the console's rate limits (every web replica shares
-- them): hits of one fixed window per row; the current and the previous window are weighed.
CREATE TABLE rate_limit_windows (
    scope text NOT NULL,
    subject text NOT NULL,
    window_start bigint NOT NULL,
    hits integer NOT NULL,
    PRIMARY KEY (scope, subject, window_start)
);
CREATE INDEX rate_limit_windows_start_idx ON rate_limit_windows (window_start);
