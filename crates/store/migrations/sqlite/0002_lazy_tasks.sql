-- Tasks are materialised when first placed. A job's task rows exist for
-- idx < tasks_materialized; every idx from tasks_materialized up to tasks is
-- pending, attempt 0, never placed. Submitting a job of N tasks writes one
-- row, and a round that places a never-placed task inserts its row instead
-- of rewriting a pending one (see ARCHITECTURE.md, "Lazy task rows").
-- Jobs written before this migration have every row already.
ALTER TABLE jobs ADD COLUMN tasks_materialized INTEGER NOT NULL DEFAULT 0
    CHECK (tasks_materialized >= 0 AND tasks_materialized <= tasks);
UPDATE jobs SET tasks_materialized = tasks;
-- The jobs with never-placed tasks: what the round reads besides the
-- pending task rows.
CREATE INDEX jobs_unmaterialized ON jobs(id) WHERE tasks_materialized < tasks;
-- The tasks holding capacity, by site only: a round inserts one entry per
-- task it places; the sums over all active tasks read the table instead.
DROP INDEX tasks_active;
CREATE INDEX tasks_active ON tasks(site) WHERE state IN ('placed', 'running');
