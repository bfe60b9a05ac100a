-- The roles of a provider's client (docs/roles-and-api-keys.md): what its own tokens
-- (client credentials) may hold. They go with the client or the role.
CREATE TABLE oauth_client_roles (
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    role_name TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (client_id, role_name)
);
CREATE INDEX oauth_client_roles_role_name ON oauth_client_roles (role_name);
