-- Security events (docs/audit-and-webhooks.md), written in the transaction of the change
-- they describe. `id` is a UUIDv7, so its text order is time order (keyset pagination).
-- No event holds a password, a token, a hash or a secret.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    type TEXT NOT NULL,
    user_id TEXT,
    actor_id TEXT,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT,
    data TEXT NOT NULL
);
CREATE INDEX audit_events_user_id ON audit_events (user_id, id);
CREATE INDEX audit_events_type ON audit_events (type, id);
CREATE INDEX audit_events_at ON audit_events (at);
