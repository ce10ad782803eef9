-- Billing schema: wallets, token budgets, holds, the append-only ledger, logs, pricing options.

CREATE TABLE wallets (
    user_id bigint PRIMARY KEY,
    quota bigint NOT NULL DEFAULT 0 CHECK (quota >= 0),
    subscription_quota bigint NOT NULL DEFAULT 0 CHECK (subscription_quota >= 0),
    used_quota bigint NOT NULL DEFAULT 0,
    request_count bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE token_budgets (
    token_id bigint PRIMARY KEY,
    user_id bigint NOT NULL,
    remain_quota bigint NOT NULL DEFAULT 0,
    used_quota bigint NOT NULL DEFAULT 0,
    unlimited boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT token_budgets_remain_non_negative CHECK (unlimited OR remain_quota >= 0)
);
CREATE INDEX token_budgets_user_idx ON token_budgets (user_id);

CREATE TABLE holds (
    request_id text PRIMARY KEY,
    user_id bigint NOT NULL,
    token_id bigint NOT NULL DEFAULT 0,
    model text NOT NULL,
    "group" text NOT NULL,
    price jsonb NOT NULL,
    reserved_quota bigint NOT NULL DEFAULT 0,
    reserved_subscription bigint NOT NULL DEFAULT 0,
    reserved_token bigint NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'settled', 'released', 'expired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    settled_at timestamptz,
    charged bigint NOT NULL DEFAULT 0
);
CREATE INDEX holds_open_expiry_idx ON holds (expires_at) WHERE status = 'open';
CREATE INDEX holds_user_open_idx ON holds (user_id) WHERE status = 'open';

-- Append-only: every change of a wallet balance is exactly one row here, written in the same
-- transaction, with the balances after it.
CREATE TABLE ledger (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    kind text NOT NULL,
    delta_quota bigint NOT NULL,
    delta_subscription bigint NOT NULL DEFAULT 0,
    balance_after bigint NOT NULL,
    subscription_after bigint NOT NULL,
    request_id text,
    actor_id bigint NOT NULL DEFAULT 0,
    reason text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_user_idx ON ledger (user_id, id);

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only';
END;
$$;
CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE logs (
    id bigserial PRIMARY KEY,
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
    elapsed_ms bigint NOT NULL DEFAULT 0
);
CREATE INDEX logs_user_id_idx ON logs (user_id, id DESC);
CREATE INDEX logs_created_at_idx ON logs (created_at);
CREATE INDEX logs_type_id_idx ON logs (type, id DESC);
-- One consume row per request: a repeated settlement can never log twice.
CREATE UNIQUE INDEX logs_consume_request_idx ON logs (request_id) WHERE type = 2;

CREATE TABLE pricing_options (
    key text PRIMARY KEY,
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by bigint NOT NULL DEFAULT 0
);
