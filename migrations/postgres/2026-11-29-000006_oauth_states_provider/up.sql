-- A pending authorization belongs to the provider it was started for: the callback of
-- another provider must not complete it (its verifier and nonce are this provider's).
-- Rows made before this column existed name no provider, so no callback takes them;
-- they live an hour at most.
ALTER TABLE oauth_states ADD COLUMN provider TEXT NOT NULL DEFAULT '';
