-- One row per (event, recipient) the notification worker admitted or refused under the limit
-- (NOTIFY_LIMIT_COUNT per NOTIFICATION_LIMIT_DURATION_MINUTE per user and type, upstream
-- `service/notify-limit.go`). Counting here, not in process memory, makes the limit hold across
-- replicas; the (event, recipient) key makes a redelivered event neither count twice nor reach
-- a recipient it already reached. Rows older than a day are purged by the worker.
CREATE TABLE notifications (
    event_seq  bigint      NOT NULL,  -- the event's sequence in the JetStream EVENTS stream
    user_id    bigint      NOT NULL,
    type       text        NOT NULL,
    outcome    text        NOT NULL CHECK (outcome IN ('pending', 'delivered', 'failed', 'limited')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_seq, user_id)
);
CREATE INDEX notifications_window_idx ON notifications (user_id, type, created_at);
CREATE INDEX notifications_created_idx ON notifications (created_at);
