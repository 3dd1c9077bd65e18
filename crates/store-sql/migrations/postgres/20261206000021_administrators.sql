-- Administrators (issue 27): users the operator marked (`mcpauth-server user add --admin`,
-- `user grant-admin`) may use the admin console and its JSON API.
ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE;

-- When a client last got tokens (the admin console's "last used"): the newest token_issued
-- record of the client, found from the end of this index.
CREATE INDEX audit_events_by_client_event ON audit_events (client_id, event, audit_id)
    WHERE client_id IS NOT NULL;
-- It serves the trail's filter by client too: the one it replaces is one write less per record.
DROP INDEX audit_events_by_client;
