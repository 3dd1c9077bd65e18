-- Shared Signals (issue 26): every change that ends access is recorded as a security event by
-- a trigger, in the transaction that makes the change, so no path (the engine, the account
-- page, the admin commands, a future one) can end access without telling the resource
-- servers. Each receiver's stream lists the events it has not acknowledged (RFC 8936 §2.4),
-- filled when an event is recorded, so every instance serves the same streams and a receiver
-- that was away catches up.
CREATE TABLE security_events (
    event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    -- grant_revoked | user_disabled | credential_changed | client_removed | key_removed
    event_type  TEXT NOT NULL,
    grant_id    TEXT,
    client_id   TEXT,
    subject     TEXT,
    kid         TEXT,
    occurred_at BIGINT NOT NULL
);
CREATE INDEX security_events_by_time ON security_events (occurred_at);

CREATE TABLE ssf_streams (
    stream_id     TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    description   TEXT,
    -- The event types the receiver gets, comma-separated with a comma on each side
    -- (",grant_revoked,user_disabled,"): the fan-out below picks streams with LIKE.
    event_types   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_polled_at BIGINT NOT NULL
);
CREATE INDEX ssf_streams_by_client ON ssf_streams (client_id);

CREATE TABLE ssf_pending (
    stream_id TEXT NOT NULL,
    event_id  INTEGER NOT NULL,
    PRIMARY KEY (stream_id, event_id)
);

CREATE TRIGGER security_event_fan_out AFTER INSERT ON security_events
BEGIN
    INSERT INTO ssf_pending (stream_id, event_id) SELECT stream_id, NEW.event_id FROM ssf_streams
    WHERE event_types LIKE '%,' || NEW.event_type || ',%';
END;

CREATE TRIGGER grant_revoked_event AFTER UPDATE OF revoked_at ON grants
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO security_events (event_type, grant_id, client_id, subject, occurred_at)
    VALUES ('grant_revoked', NEW.grant_id, NEW.client_id, NEW.subject, NEW.revoked_at);
END;

CREATE TRIGGER user_disabled_event AFTER UPDATE OF disabled_at ON users
WHEN OLD.disabled_at IS NULL AND NEW.disabled_at IS NOT NULL
BEGIN
    INSERT INTO security_events (event_type, subject, occurred_at)
    VALUES ('user_disabled', NEW.user_id, NEW.disabled_at);
END;

CREATE TRIGGER credential_changed_event AFTER UPDATE OF password_hash ON users
WHEN OLD.password_hash <> NEW.password_hash
BEGIN
    INSERT INTO security_events (event_type, subject, occurred_at)
    VALUES ('credential_changed', NEW.user_id, CAST(strftime('%s', 'now') AS INTEGER));
END;

CREATE TRIGGER client_removed_event AFTER DELETE ON clients
BEGIN
    INSERT INTO security_events (event_type, client_id, occurred_at)
    VALUES ('client_removed', OLD.client_id, CAST(strftime('%s', 'now') AS INTEGER));
END;

CREATE TRIGGER key_removed_event AFTER DELETE ON signing_keys
BEGIN
    INSERT INTO security_events (event_type, kid, occurred_at)
    VALUES ('key_removed', OLD.kid, CAST(strftime('%s', 'now') AS INTEGER));
END;
