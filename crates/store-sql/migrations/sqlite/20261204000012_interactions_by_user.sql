-- Disabling a user or changing their password ends their sign-ins in progress.
CREATE INDEX interactions_by_user ON interactions (user_id);
