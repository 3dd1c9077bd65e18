-- A rotated refresh token keeps its successor, sealed with a key derived from the rotated
-- token itself (stored only as a hash), for the refresh-reuse grace window: a retry inside it
-- gets the same successor again. The sweep forgets it once the window has closed.
ALTER TABLE refresh_tokens ADD COLUMN sealed_successor TEXT;
CREATE INDEX refresh_tokens_with_successor ON refresh_tokens (rotated_at) WHERE sealed_successor IS NOT NULL;
