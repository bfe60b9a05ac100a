-- Consecutive failed logins per account key (the lower-cased email, known or not):
-- kept in the database so every replica counts the same failures.
CREATE TABLE login_failures (
    email_key TEXT PRIMARY KEY NOT NULL,
    failures BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
CREATE INDEX login_failures_updated_at ON login_failures (updated_at);

-- Fixed one-minute windows of requests per client IP and route, shared by replicas.
CREATE TABLE rate_limits (
    bucket TEXT PRIMARY KEY NOT NULL,
    window_start BIGINT NOT NULL,
    hits BIGINT NOT NULL
);
CREATE INDEX rate_limits_window_start ON rate_limits (window_start);
