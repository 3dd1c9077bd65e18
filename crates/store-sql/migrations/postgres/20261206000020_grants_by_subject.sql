-- The operator lists a user's grants (mcpauth-server grant list --user).
CREATE INDEX grants_by_subject ON grants (subject, created_at);
