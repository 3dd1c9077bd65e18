-- Federated sign-ins waiting for the upstream identity provider's callback (mcpauth-proxy):
-- keyed by the SHA-256 of the `state` sent upstream, taken once.
CREATE TABLE upstream_requests (
    state_hash TEXT PRIMARY KEY,
    record     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX upstream_requests_by_expiry ON upstream_requests (expires_at);
