-- What a user approved for a client, remembered so the consent page is not shown again for
-- the same (or a smaller) set of scopes and resources. Deleting the row (the account page,
-- `mcpauth-server consent revoke`) asks again next time and revokes the client's grants.
CREATE TABLE consents (
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,          -- space-separated scope tokens approved so far
    resources   TEXT NOT NULL,          -- JSON array of resource indicators approved so far
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
