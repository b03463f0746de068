-- What a site's agent said with its last heartbeat: how many reports wait
-- in its outbox, and why it starts no new attempts (its outbox reached the
-- site file's outbox_max), if it does not. NULL: not said (an agent that
-- predates the heartbeat body, or no heartbeat yet).
ALTER TABLE sites ADD COLUMN agent_outbox BIGINT;
ALTER TABLE sites ADD COLUMN agent_starts_paused TEXT;
