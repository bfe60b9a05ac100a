-- The OAuth 2.1 / OpenID Connect provider (docs/oauth-provider.md).

-- The apps registered to sign people in here. `metadata` is the client's registered
-- metadata as JSON (RFC 7591); the secret is kept only as its SHA-256.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What a person allowed a client: remembered per (user, client) until they remove it.
CREATE TABLE oauth_consents (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    last_used_at BIGINT,
    PRIMARY KEY (user_id, client_id)
);

-- An authorization request waiting for its person: to sign in (`login`) or to decide
-- (`consent`). Single use, ten minutes.
CREATE TABLE oauth_requests (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    user_id TEXT,
    session_id TEXT,
    csrf TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Authorization codes, by their SHA-256: single use; `grant_session_id` is the session
-- the redemption started, ended if the code comes again.
CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    grant_session_id TEXT
);

-- A grant: the session of a person with a client (method `oauth:<client_id>` in
-- `sessions`), and what it was granted.
CREATE TABLE oauth_grants (
    session_id TEXT PRIMARY KEY NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);

-- Access tokens of the provider revoked before they expire, by `jti`.
CREATE TABLE oauth_revoked (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);

-- What the provider's queries look up and purge by.
CREATE INDEX oauth_consents_client ON oauth_consents (client_id);
CREATE INDEX oauth_requests_expires ON oauth_requests (expires_at);
CREATE INDEX oauth_requests_client ON oauth_requests (client_id);
CREATE INDEX oauth_codes_user_client ON oauth_codes (user_id, client_id);
CREATE INDEX oauth_codes_client ON oauth_codes (client_id);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);
CREATE INDEX oauth_grants_user ON oauth_grants (user_id);
CREATE INDEX oauth_revoked_expires ON oauth_revoked (expires_at);

-- How the second step of a sign-in was made (`otp`, `hwk`), for `amr`.
ALTER TABLE sessions ADD COLUMN second_factor TEXT;
