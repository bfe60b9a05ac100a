-- Accounts at an identity provider linked to a user, keyed by (provider, subject): one
-- provider account links to at most one user; deleting the user removes the link.
-- Provider access/refresh tokens are deliberately not stored: the service never calls
-- the provider on the user's behalf after sign-in.
CREATE TABLE oauth_accounts (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    oauth_name TEXT NOT NULL,
    account_id TEXT NOT NULL,
    account_email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX oauth_accounts_provider_subject ON oauth_accounts (oauth_name, account_id);
CREATE INDEX oauth_accounts_user_id ON oauth_accounts (user_id);

-- Pending authorizations: the PKCE verifier and nonce stay server-side (a signed but
-- readable state would expose them), keyed by the id the signed state carries. A row
-- is deleted by the callback that uses it, so a state works once.
CREATE TABLE oauth_states (
    id TEXT PRIMARY KEY NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    user_id TEXT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);
