ALTER TABLE sessions DROP COLUMN second_factor;
DROP TABLE oauth_revoked;
DROP TABLE oauth_grants;
DROP TABLE oauth_codes;
DROP TABLE oauth_requests;
DROP TABLE oauth_consents;
DROP TABLE oauth_clients;
