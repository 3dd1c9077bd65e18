-- Identical audit records of one second (the same event, outcome, user, client, address,
-- actor and detail) are stored once with how many there were: a machine client's thousands of
-- client_credentials tokens a second, or a flood of failed client authentications, are a row
-- a second each rather than thousands.
ALTER TABLE audit_events ADD COLUMN repeated BIGINT NOT NULL DEFAULT 1;
