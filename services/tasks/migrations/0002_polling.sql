-- Polling state: which replica may poll a task (lease), when it is next due (backoff), and
-- whether its failure was refunded (published to billing once; billing dedups by request_id).
ALTER TABLE tasks
    ADD COLUMN next_poll_at  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN lease_until   timestamptz,
    ADD COLUMN poll_failures integer     NOT NULL DEFAULT 0,
    ADD COLUMN refund_state  smallint    NOT NULL DEFAULT 0;  -- 0 none, 1 due, 2 published
CREATE INDEX tasks_due_idx ON tasks (next_poll_at) WHERE status NOT IN (5, 6) OR refund_state = 1;
CREATE INDEX tasks_upstream_idx ON tasks (platform, upstream_task_id);
CREATE INDEX tasks_submit_idx ON tasks (submit_time DESC);
