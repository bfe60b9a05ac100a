DROP TABLE mail_sends;
ALTER TABLE oauth_states DROP COLUMN return_to;
ALTER TABLE totp_factors DROP COLUMN unverified_at_setup;
ALTER TABLE passkeys DROP COLUMN unverified_at_setup;
ALTER TABLE oauth_accounts DROP COLUMN email_verified;
ALTER TABLE oauth_accounts DROP COLUMN unverified_at_setup;
