-- Remembered consent covers exactly what the user saw: one row per client, redirect URI and
-- resource, with the scopes approved for that resource (no union across resources). A request
-- with another redirect URI, or for a resource or scope not approved for it, shows the
-- consent page again. Decisions remembered before are kept under an empty redirect URI, which
-- no request has: they ask once more, and stay listed (and withdrawable) on the account page.
CREATE TABLE consent_approvals (
    user_id      TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    resource     TEXT NOT NULL,
    scope        TEXT NOT NULL,          -- space-separated scope tokens approved for it
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, redirect_uri, resource)
);
INSERT INTO consent_approvals (user_id, client_id, redirect_uri, resource, scope, created_at, updated_at)
    SELECT c.user_id, c.client_id, '', j.value, c.scope, c.created_at, c.updated_at
    FROM consents c, json_each(c.resources) j;
DROP TABLE consents;
