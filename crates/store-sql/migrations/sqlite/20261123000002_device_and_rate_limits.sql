-- RFC 8628 device authorizations (both codes stored as SHA-256 hashes) and fixed-window
-- rate-limit counters shared by every instance on this database.

CREATE TABLE device_authorizations (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash   TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL,
    resources        TEXT NOT NULL,
    expires_at       BIGINT NOT NULL,
    poll_interval    BIGINT NOT NULL,
    last_polled_at   BIGINT,
    previous_polled_at BIGINT,            -- last_polled_at before the latest poll
    state            TEXT NOT NULL,       -- pending | approved | denied | consumed
    subject          TEXT,
    grant_id         TEXT
);
CREATE INDEX device_authorizations_by_expiry ON device_authorizations (expires_at);

CREATE TABLE rate_limits (
    limit_key    TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL
);
