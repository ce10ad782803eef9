-- Email verification codes and password-reset tokens, stored as keyed hashes only.
-- purpose: 'verify' (6-digit code, 10 minutes) or 'reset' (single-use link token, 15 minutes).

CREATE TABLE email_codes (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    purpose text NOT NULL CHECK (purpose IN ('verify', 'reset')),
    code_hash text NOT NULL,
    user_id bigint NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    used_at bigint
);
CREATE INDEX email_codes_email_idx ON email_codes (email, purpose, id DESC);
