-- Consecutive failed sign-ins per account (keyed by the SHA-256 of the normalised email, so
-- no address is stored), and the lock they led to: shared by every instance.
CREATE TABLE login_failures (
    account_hash TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,       -- wrong passwords since the last lock or success
    lockouts     BIGINT NOT NULL,       -- locks so far: each lasts twice as long as the last
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX login_failures_by_update ON login_failures (updated_at);
