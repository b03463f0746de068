-- Whether the job is a gang (kind = "gang" in its spec): all its tasks run
-- together in one pool or not at all. A gang member that goes back to
-- pending (retry, lost lease) takes its live peers with it, so the round can
-- place the whole gang again; one that ends for good cancels them.
ALTER TABLE jobs ADD COLUMN gang BIGINT NOT NULL DEFAULT 0 CHECK (gang IN (0, 1));
UPDATE jobs SET gang = 1 WHERE (spec::json)->>'kind' = 'gang';
