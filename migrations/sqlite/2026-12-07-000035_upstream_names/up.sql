-- Accounts at upstream providers (Google, GitHub, OpenID providers the service signs
-- people in through) and their pending authorizations are "upstream", apart from the
-- service's own OAuth provider, whose tables are oauth_* (ARCHITECTURE.md).
ALTER TABLE oauth_accounts RENAME TO upstream_identities;
ALTER TABLE oauth_states RENAME TO upstream_states;
