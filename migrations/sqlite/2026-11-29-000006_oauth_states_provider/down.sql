ALTER TABLE oauth_states DROP COLUMN provider;
