-- Idempotency records are kept for a retention (24 h by default) and pruned
-- oldest first in the background; this index keeps each prune a range scan.
CREATE INDEX idempotency_created ON idempotency (created_at_ms);
