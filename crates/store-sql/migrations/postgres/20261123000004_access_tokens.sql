-- Opaque access tokens (when configured instead of JWTs), stored by SHA-256 hash.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT,
    client_id  TEXT NOT NULL,
    claims     TEXT NOT NULL,       -- JSON RFC 9068 claims
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
