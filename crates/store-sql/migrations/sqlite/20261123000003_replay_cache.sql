-- One-time values (client-assertion jti, RFC 7523 §3) until they expire.
CREATE TABLE replay_cache (
    cache_key  TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX replay_cache_by_expiry ON replay_cache (expires_at);
