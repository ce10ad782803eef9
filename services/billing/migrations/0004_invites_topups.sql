-- Invite rewards (upstream `controller/user.go`) and online top-up orders (upstream
-- `model/topup.go`, `controller/topup.go`).

ALTER TABLE wallets ADD COLUMN aff_quota bigint NOT NULL DEFAULT 0 CHECK (aff_quota >= 0);
ALTER TABLE wallets ADD COLUMN aff_history bigint NOT NULL DEFAULT 0;

-- One row per registered user whose signup rewards were granted (idempotency).
CREATE TABLE signup_rewards (
    user_id bigint PRIMARY KEY,
    inviter_id bigint NOT NULL DEFAULT 0,
    new_user_quota bigint NOT NULL DEFAULT 0,
    invitee_quota bigint NOT NULL DEFAULT 0,
    inviter_quota bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE top_ups (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    inviter_id bigint NOT NULL DEFAULT 0,
    amount bigint NOT NULL CHECK (amount > 0),
    quota bigint NOT NULL CHECK (quota > 0),
    money numeric(18, 2) NOT NULL,
    payment_method text NOT NULL DEFAULT '',
    trade_no text NOT NULL UNIQUE,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'success')),
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    upstream_trade_no text NOT NULL DEFAULT ''
);
CREATE INDEX top_ups_user_idx ON top_ups (user_id, id DESC);
