-- Local accounts of users who sign in at an upstream identity provider (mcpauth-proxy): one
-- row per provider and upstream subject. Never keyed by email, which can change owner.
CREATE TABLE federated_identities (
    provider        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    upstream_tokens TEXT,           -- AES-256-GCM sealed JSON; only when the operator keeps them
    refresh_lease_until BIGINT,     -- an instance is refreshing the tokens until then
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX federated_identities_by_user ON federated_identities (user_id);
