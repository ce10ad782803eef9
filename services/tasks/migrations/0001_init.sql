-- Async jobs (Midjourney, Suno, video), one row per upstream task; filled in by the tasks worker.
CREATE TABLE tasks (
    id               bigserial PRIMARY KEY,
    request_id       text        NOT NULL UNIQUE,
    platform         smallint    NOT NULL,
    upstream_task_id text        NOT NULL,
    action           text        NOT NULL DEFAULT '',
    status           smallint    NOT NULL DEFAULT 2,
    progress         text        NOT NULL DEFAULT '',
    fail_reason      text        NOT NULL DEFAULT '',
    user_id          bigint      NOT NULL,
    token_id         bigint      NOT NULL DEFAULT 0,
    channel_id       bigint      NOT NULL DEFAULT 0,
    quota            bigint      NOT NULL DEFAULT 0,
    model_name       text        NOT NULL DEFAULT '',
    properties       jsonb       NOT NULL DEFAULT '{}',
    data             jsonb       NOT NULL DEFAULT '{}',
    submit_time      bigint      NOT NULL DEFAULT 0,
    start_time       bigint      NOT NULL DEFAULT 0,
    finish_time      bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_user_idx ON tasks (user_id, id DESC);
CREATE INDEX tasks_open_idx ON tasks (platform, status) WHERE status NOT IN (5, 6);
