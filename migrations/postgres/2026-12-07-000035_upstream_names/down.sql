ALTER TABLE upstream_states RENAME TO oauth_states;
ALTER TABLE upstream_identities RENAME TO oauth_accounts;
