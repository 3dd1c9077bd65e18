-- mcpauth storage. Secrets (codes, refresh tokens, client secrets, session and interaction
-- ids) are stored as SHA-256 hashes; times are absolute seconds since the Unix epoch.

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    record      TEXT NOT NULL,          -- JSON ClientRecord (secret only as a hash)
    created_at  BIGINT NOT NULL
);

CREATE TABLE grants (
    grant_id    TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    resources   TEXT NOT NULL,          -- JSON array
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX grants_by_client_subject ON grants (client_id, subject);

CREATE TABLE authorization_codes (
    code_hash               TEXT PRIMARY KEY,
    grant_id                TEXT NOT NULL,
    client_id               TEXT NOT NULL,
    redirect_uri            TEXT NOT NULL,
    redirect_uri_in_request BOOLEAN NOT NULL,
    code_challenge          TEXT NOT NULL,
    subject                 TEXT NOT NULL,
    scope                   TEXT NOT NULL,
    resources               TEXT NOT NULL,
    expires_at              BIGINT NOT NULL,
    consumed_at             BIGINT
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    resources   TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

-- The server's own state: users, signing keys, login interactions and sessions.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,        -- argon2id PHC string
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,         -- PKCS#8 DER
    created_at   BIGINT NOT NULL
);

CREATE TABLE interactions (
    id_hash     TEXT PRIMARY KEY,
    pending     TEXT NOT NULL,          -- JSON PendingAuthorization
    csrf_hash   TEXT NOT NULL,
    user_id     TEXT,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
