-- Named rows that a transaction locks to run alone across every instance on this database
-- (creating the first signing key). Locking an existing row blocks the others until commit.
CREATE TABLE store_locks (
    name TEXT PRIMARY KEY
);
INSERT INTO store_locks (name) VALUES ('signing_keys');

-- The background sweep deletes expired rows in small batches by expiry.
CREATE INDEX interactions_by_expiry ON interactions (expires_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
