-- Shared Signals push delivery (RFC 8935) and verification events (SSF §8.1.4), issue 26.
-- A push stream names where its events go; the transmitter instance that claims it (a
-- random push_lease, held until push_due_at) posts its pending events there, oldest first,
-- and after a failure waits push_due_at out (doubling with push_failures). Only the lease's
-- holder may release it. A poll stream has no push_url.
ALTER TABLE ssf_streams ADD COLUMN push_url TEXT;
-- The Authorization header the receiver asked to be sent with each push (SSF §8.1.1
-- `authorization_header`): a credential of the receiver's, presented, so kept as given.
ALTER TABLE ssf_streams ADD COLUMN push_authorization TEXT;
ALTER TABLE ssf_streams ADD COLUMN push_due_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ssf_streams ADD COLUMN push_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ssf_streams ADD COLUMN push_lease TEXT;
-- A verification event is for one stream (the one whose receiver asked), with the state
-- the receiver gave; the fan-out trigger never picks it (no stream lists its type).
ALTER TABLE security_events ADD COLUMN stream_id TEXT;
ALTER TABLE security_events ADD COLUMN state TEXT;
-- At most one verification event per stream is kept (a new request replaces it).
CREATE INDEX security_events_by_stream ON security_events (stream_id) WHERE stream_id IS NOT NULL;

-- The database's clock in whole seconds, truncated as every other time here is: a cast of
-- EXTRACT(EPOCH …) alone rounds, dating a password change up to half a second late, so a
-- token issued in the next second counted as issued before it and was refused.
CREATE OR REPLACE FUNCTION mcpauth_credential_changed_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO security_events (event_type, subject, occurred_at)
    VALUES ('credential_changed', NEW.user_id, floor(EXTRACT(EPOCH FROM now()))::BIGINT);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mcpauth_client_removed_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO security_events (event_type, client_id, occurred_at)
    VALUES ('client_removed', OLD.client_id, floor(EXTRACT(EPOCH FROM now()))::BIGINT);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION mcpauth_key_removed_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO security_events (event_type, kid, occurred_at)
    VALUES ('key_removed', OLD.kid, floor(EXTRACT(EPOCH FROM now()))::BIGINT);
    RETURN NULL;
END $$;
