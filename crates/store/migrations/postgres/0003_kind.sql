-- The job's kind, from its spec, for the rules the store keeps per kind:
-- a gang runs whole or not at all (a member back to pending takes its live
-- peers with it; one that ends for good cancels them); a service's replica
-- that ends is started again while the job has retries left.
ALTER TABLE jobs ADD COLUMN kind TEXT COLLATE "C" NOT NULL DEFAULT 'batch'
    CHECK (kind IN ('batch', 'gang', 'service'));
UPDATE jobs SET kind = (spec::json)->>'kind'
    WHERE (spec::json)->>'kind' IN ('gang', 'service');
