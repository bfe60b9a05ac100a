-- A second factor (docs/second-factor.md). TOTP: one per user, pending until confirmed from
-- the session that started it; the secret is encrypted with a key only the servers hold;
-- `last_step` is the last time step accepted, so a code works once.
CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    pending_session_id TEXT,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- Recovery codes, peppered hashes only; a used one keeps its row with `used_at`.
CREATE TABLE recovery_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX recovery_codes_user_id ON recovery_codes (user_id);

-- Passkeys (WebAuthn credentials). `credential` is webauthn-rs's serialised Passkey
-- (public key material only); `sign_count` is kept apart so that a signature counter
-- going back (a cloned authenticator) is refused with one conditional UPDATE.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    sign_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX passkeys_credential_id ON passkeys (credential_id);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

-- WebAuthn ceremonies in progress, so that any replica can finish one another started:
-- single use (deleted when taken), five minutes.
CREATE TABLE webauthn_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    mfa_id TEXT,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_challenges_expires_at ON webauthn_challenges (expires_at);

-- First factors waiting for their second (the mfa_token, stored as its SHA-256): what
-- the sign-in asked for, so the second step answers what the first would have.
CREATE TABLE mfa_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method TEXT NOT NULL,
    transport TEXT NOT NULL,
    offline_access BOOLEAN NOT NULL,
    ip TEXT,
    user_agent TEXT,
    failures BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at);
