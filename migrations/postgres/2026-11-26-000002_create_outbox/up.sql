-- Mail to send, written in the same transaction as the change that causes it and
-- delivered by a worker. `payload` (JSON) may hold a token: it is cleared once the mail
-- is sent or given up. A row is claimed with a lease (`locked_by`, `locked_until`) so
-- several replicas never deliver the same mail twice.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    locked_by TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
