-- Guards against keeping a way into an account that is not one's own (docs/security.md).
--
-- What was set up while the account's address was unproven: a later proof by mail (a
-- completed reset or verification) removes it, and a takeover by a provider that proves
-- the address removes everything anyway. Rows that exist already are marked when their
-- user is unverified now: what they were set up under cannot be known, and the owner
-- can set them up again, a squatter cannot.
ALTER TABLE oauth_accounts ADD COLUMN unverified_at_setup BOOLEAN NOT NULL DEFAULT FALSE;
-- Whether the provider said the account's email was verified when it was linked: such
-- an identity whose email is the account's is the owner's own and survives a proof.
ALTER TABLE oauth_accounts ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE passkeys ADD COLUMN unverified_at_setup BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE totp_factors ADD COLUMN unverified_at_setup BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE oauth_accounts SET unverified_at_setup = TRUE
    WHERE user_id IN (SELECT id FROM users WHERE is_verified = FALSE);
-- links made before this column existed whose email is the account's: treated as the
-- provider's verified claim, as every built-in provider only hands out verified emails
UPDATE oauth_accounts SET email_verified = TRUE
    WHERE lower(account_email) = (SELECT email_key FROM users WHERE users.id = oauth_accounts.user_id);
UPDATE passkeys SET unverified_at_setup = TRUE
    WHERE user_id IN (SELECT id FROM users WHERE is_verified = FALSE);
UPDATE totp_factors SET unverified_at_setup = TRUE
    WHERE user_id IN (SELECT id FROM users WHERE is_verified = FALSE);

-- A provider sign-in started from one of the service's pages ends on that page, with the
-- cookie set by the callback; no token travels through a URL.
ALTER TABLE oauth_states ADD COLUMN return_to TEXT;

-- The reset and verification mails sent to each address, so that at most a few go out
-- in any 15 minutes whatever the number of requests.
CREATE TABLE mail_sends (
    id TEXT PRIMARY KEY NOT NULL,
    email_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    sent_at BIGINT NOT NULL
);
CREATE INDEX mail_sends_key ON mail_sends (email_key, kind, sent_at);
