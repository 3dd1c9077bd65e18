-- RFC 9449: the JWK thumbprint of the DPoP key an authorization code (dpop_jkt, §10) or a
-- public client's refresh token (§5) is bound to; NULL when unbound.
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;

-- Secrets every instance must agree on without an operator configuring them (the DPoP nonce
-- MAC key): the first instance to start stores one, every instance reads it.
CREATE TABLE shared_secrets (
    name        TEXT PRIMARY KEY,
    secret      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
