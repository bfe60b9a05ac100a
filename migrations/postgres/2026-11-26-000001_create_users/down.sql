DROP TABLE service_settings;
DROP TABLE revoked_tokens;
DROP TABLE users;
