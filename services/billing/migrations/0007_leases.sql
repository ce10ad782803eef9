-- Quota leases (issue 6, BILLING_LEASES=true): an amount carved out of a wallet (and a token
-- budget) for one relay replica, which holds requests locally against it. Granting writes a
-- 'lease' ledger row (the wallet goes down), returning writes a 'lease_return' row with the
-- unspent rest. Each settled request turns into a hold taken from the lease (`spent`), then
-- settled like any hold, so wallet == sum(ledger) holds throughout and nothing can overdraw.
CREATE TABLE leases (
    lease_id text PRIMARY KEY,
    holder text NOT NULL,
    user_id bigint NOT NULL,
    token_id bigint NOT NULL DEFAULT 0,
    model text NOT NULL,
    "group" text NOT NULL,
    price jsonb NOT NULL,
    granted_quota bigint NOT NULL CHECK (granted_quota >= 0),
    granted_subscription bigint NOT NULL CHECK (granted_subscription >= 0),
    granted_token bigint NOT NULL DEFAULT 0 CHECK (granted_token >= 0),
    spent_quota bigint NOT NULL DEFAULT 0,
    spent_subscription bigint NOT NULL DEFAULT 0,
    spent_token bigint NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'returned')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    reap_at timestamptz NOT NULL,
    returned_at timestamptz,
    returned bigint NOT NULL DEFAULT 0,
    CONSTRAINT leases_spent_within_grant CHECK (
        spent_quota BETWEEN 0 AND granted_quota
        AND spent_subscription BETWEEN 0 AND granted_subscription
        AND spent_token BETWEEN 0 AND granted_token)
);
CREATE INDEX leases_active_reap_idx ON leases (reap_at) WHERE status = 'active';
CREATE INDEX leases_user_active_idx ON leases (user_id) WHERE status = 'active';
ALTER TABLE holds ADD COLUMN lease_id text;
