-- Accounts schema: identity, API keys, channels, the routing index and runtime options.

CREATE TABLE setups (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    root_user_id bigint NOT NULL,
    initialized_at bigint NOT NULL
);

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    -- Unique across live and soft-deleted users: a deleted name cannot be registered again.
    username text NOT NULL UNIQUE,
    password_hash text NOT NULL DEFAULT '',
    display_name text NOT NULL DEFAULT '',
    email text NOT NULL DEFAULT '',
    role smallint NOT NULL DEFAULT 1 CHECK (role IN (1, 10, 100)),
    status smallint NOT NULL DEFAULT 1 CHECK (status IN (1, 2)),
    "group" text NOT NULL DEFAULT 'default',
    aff_code text NOT NULL UNIQUE,
    aff_count bigint NOT NULL DEFAULT 0,
    inviter_id bigint NOT NULL DEFAULT 0,
    setting text NOT NULL DEFAULT '',
    access_token_hash text UNIQUE,
    github_id text NOT NULL DEFAULT '',
    oidc_id text NOT NULL DEFAULT '',
    wechat_id text NOT NULL DEFAULT '',
    telegram_id text NOT NULL DEFAULT '',
    linux_do_id text NOT NULL DEFAULT '',
    idc_flare_id text NOT NULL DEFAULT '',
    created_at bigint NOT NULL,
    deleted_at bigint
);
CREATE INDEX users_email_idx ON users (email) WHERE email <> '';
CREATE INDEX users_group_idx ON users ("group");

CREATE TABLE sessions (
    id_hash text PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    revoked boolean NOT NULL DEFAULT false,
    client_ip text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE tokens (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_enc text NOT NULL,
    key_hash text NOT NULL UNIQUE,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 30),
    status smallint NOT NULL DEFAULT 1 CHECK (status BETWEEN 1 AND 4),
    created_time bigint NOT NULL,
    accessed_time bigint NOT NULL DEFAULT 0,
    expired_time bigint NOT NULL DEFAULT -1,
    unlimited_quota boolean NOT NULL DEFAULT false,
    model_limits_enabled boolean NOT NULL DEFAULT false,
    model_limits text[] NOT NULL DEFAULT '{}',
    allow_ips text[] NOT NULL DEFAULT '{}',
    "group" text NOT NULL DEFAULT '',
    rate_limit_enabled boolean NOT NULL DEFAULT false,
    rate_limit_period bigint NOT NULL DEFAULT 60,
    rate_limit_count bigint NOT NULL DEFAULT 1000,
    rate_limit_success bigint NOT NULL DEFAULT 10,
    deleted_at bigint
);
CREATE INDEX tokens_user_idx ON tokens (user_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE channels (
    id bigserial PRIMARY KEY,
    type integer NOT NULL,
    name text NOT NULL,
    base_url text NOT NULL DEFAULT '',
    models text[] NOT NULL,
    groups text[] NOT NULL,
    priority bigint NOT NULL DEFAULT 0,
    weight bigint NOT NULL DEFAULT 0 CHECK (weight >= 0),
    status smallint NOT NULL DEFAULT 1 CHECK (status BETWEEN 0 AND 3),
    model_mapping text NOT NULL DEFAULT '',
    status_code_mapping text NOT NULL DEFAULT '',
    model_prefix text NOT NULL DEFAULT '',
    system_prompt text NOT NULL DEFAULT '',
    tag text NOT NULL DEFAULT '',
    test_model text NOT NULL DEFAULT '',
    openai_organization text NOT NULL DEFAULT '',
    other text NOT NULL DEFAULT '',
    setting text NOT NULL DEFAULT '',
    param_override text NOT NULL DEFAULT '',
    auto_ban boolean NOT NULL DEFAULT true,
    created_time bigint NOT NULL,
    test_time bigint NOT NULL DEFAULT 0,
    response_time bigint NOT NULL DEFAULT 0,
    balance double precision NOT NULL DEFAULT 0,
    balance_updated_time bigint NOT NULL DEFAULT 0,
    used_quota bigint NOT NULL DEFAULT 0,
    status_reason text NOT NULL DEFAULT '',
    status_time bigint NOT NULL DEFAULT 0
);

CREATE TABLE channel_keys (
    id bigserial PRIMARY KEY,
    channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    idx integer NOT NULL,
    key_enc text NOT NULL,
    key_hash text NOT NULL,
    status smallint NOT NULL DEFAULT 1 CHECK (status BETWEEN 1 AND 3),
    last_error text NOT NULL DEFAULT '',
    used_quota bigint NOT NULL DEFAULT 0,
    request_count bigint NOT NULL DEFAULT 0,
    failure_count bigint NOT NULL DEFAULT 0,
    UNIQUE (channel_id, idx)
);

-- The routing index: one row per channel group x model; model names compare byte-wise.
CREATE TABLE abilities (
    "group" text COLLATE "C" NOT NULL,
    model text COLLATE "C" NOT NULL,
    channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    priority bigint NOT NULL DEFAULT 0,
    weight bigint NOT NULL DEFAULT 0,
    enabled boolean NOT NULL DEFAULT true,
    tag text NOT NULL DEFAULT '',
    PRIMARY KEY ("group", model, channel_id)
);
CREATE INDEX abilities_channel_idx ON abilities (channel_id);

CREATE TABLE options (
    key text PRIMARY KEY,
    value text NOT NULL
);

-- One row; bumped in the same transaction as every channel or option change.
CREATE TABLE routing_state (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO routing_state (id, version) VALUES (1, 1);
