-- Accounts round 2: option audit, channel key reveal audit, login attempts, session ids, inbox.

CREATE TABLE option_audit (
    id bigserial PRIMARY KEY,
    actor_id bigint NOT NULL,
    key text NOT NULL,
    old_value text NOT NULL,
    new_value text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX option_audit_key_idx ON option_audit (key, id DESC);

CREATE TABLE channel_key_reveals (
    id bigserial PRIMARY KEY,
    actor_id bigint NOT NULL,
    channel_id bigint NOT NULL,
    key_id bigint NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX channel_key_reveals_channel_idx ON channel_key_reveals (channel_id, id DESC);

-- Failed password logins, shared by every accounts replica. scope: 'user' or 'ip'.
CREATE TABLE login_failures (
    id bigserial PRIMARY KEY,
    scope text NOT NULL CHECK (scope IN ('user', 'ip')),
    subject text NOT NULL,
    failed_at bigint NOT NULL
);
CREATE INDEX login_failures_subject_idx ON login_failures (scope, subject, failed_at);

-- A public id for sessions so a user can list and revoke them (the secret stays hashed).
ALTER TABLE sessions ADD COLUMN id bigserial;
CREATE UNIQUE INDEX sessions_id_idx ON sessions (id);

-- Inbox: Markdown messages from admins to every user or to chosen users.
CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    content text NOT NULL,
    format text NOT NULL DEFAULT 'markdown',
    to_all boolean NOT NULL DEFAULT false,
    created_by bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE TABLE message_recipients (
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX message_recipients_user_idx ON message_recipients (user_id, message_id);

CREATE TABLE message_reads (
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_at bigint NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
