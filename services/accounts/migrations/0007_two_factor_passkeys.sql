-- TOTP two-factor authentication (beyond upstream Veloera; new-api has it): the secret is
-- encrypted with the accounts SecretBox, `enabled` once a first code confirmed it, and the
-- last accepted time step is kept so that one code never works twice.
CREATE TABLE user_two_factor (
    user_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_enc text NOT NULL,
    enabled boolean NOT NULL DEFAULT false,
    last_step bigint NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    enabled_at bigint NOT NULL DEFAULT 0
);

-- One-time backup codes, stored as their lookup HMAC only.
CREATE TABLE user_backup_codes (
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash text NOT NULL,
    used_at bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, code_hash)
);

-- WebAuthn credentials (passkeys): the credential id (base64url) names one credential of one
-- user; the COSE public key verifies its assertions; the signature counter catches clones.
CREATE TABLE user_passkeys (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id text NOT NULL UNIQUE,
    public_key bytea NOT NULL,
    sign_count bigint NOT NULL DEFAULT 0,
    name text NOT NULL DEFAULT '',
    transports text NOT NULL DEFAULT '',
    created_at bigint NOT NULL,
    last_used_at bigint NOT NULL DEFAULT 0
);
CREATE INDEX user_passkeys_user_idx ON user_passkeys (user_id);
