-- Sessions: one per sign-in (docs/sessions-and-tokens.md). Access tokens carry the id as
-- `sid`; a session ends when `ended_at` is set, when `expires_at` passes, or when it has
-- not been used for the idle limit. Refresh tokens are never stored: a token is derived
-- from the server's key, `refresh_key_salt` and `refresh_counter`, so the database
-- alone cannot make one. Rotation is one conditional UPDATE on `refresh_counter`.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT,
    ip TEXT,
    user_agent TEXT,
    method TEXT NOT NULL,
    aal BIGINT NOT NULL,
    -- refresh tokens: none until asked for with offline_access
    refresh_key_salt TEXT,
    refresh_counter BIGINT NOT NULL DEFAULT 0,
    refreshed_at BIGINT
);
CREATE INDEX sessions_user_id ON sessions (user_id, created_at);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
