-- Keys that sign access tokens when JWT_ALGORITHM is asymmetric
-- (docs/sessions-and-tokens.md). A key signs from `active_from` until the next key's
-- `active_from`, and is published from its creation until the last token it signed has
-- expired. The private key is sealed with a key derived from JWT_SECRET.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    algorithm TEXT NOT NULL,
    private_key_sealed TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    active_from BIGINT NOT NULL
);
CREATE INDEX signing_keys_active_from ON signing_keys (algorithm, active_from);
