-- Roles and API keys (docs/roles-and-api-keys.md). A role is a name with permissions
-- (a JSON array of strings); a user holds roles through user_roles, and loses them with
-- the role or the user.
CREATE TABLE roles (
    name TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_name TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_name)
);
CREATE INDEX user_roles_role_name ON user_roles (role_name);

-- API keys: only the key's SHA-256 is stored; `prefix` (the first 12 characters) is what
-- the owner recognises it by. `permissions` is a JSON array, or NULL for "the user's own,
-- as they change". A revoked key's row is deleted.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    permissions TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    unverified_at_setup BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_user_id ON api_keys (user_id);
