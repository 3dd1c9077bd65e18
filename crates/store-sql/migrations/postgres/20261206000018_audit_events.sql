-- The audit trail (issue 27): who did what, from which address, with what outcome. Written by
-- mcpauth-server (sign-ins, consent, the administrator's commands), swept after
-- audit_retention_days.
CREATE TABLE audit_events (
    audit_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    event       TEXT NOT NULL,
    -- success | failure
    outcome     TEXT NOT NULL,
    user_id     TEXT,
    client_id   TEXT,
    address     TEXT,
    actor       TEXT,
    detail      TEXT
);
CREATE INDEX audit_events_by_time ON audit_events (occurred_at);
CREATE INDEX audit_events_by_user ON audit_events (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX audit_events_by_client ON audit_events (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX audit_events_by_address ON audit_events (address) WHERE address IS NOT NULL;
