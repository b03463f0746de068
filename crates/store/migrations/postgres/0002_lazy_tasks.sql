-- Tasks are materialised when first placed. A job's task rows exist for
-- idx < tasks_materialized; every idx from tasks_materialized up to tasks is
-- pending, attempt 0, never placed. Submitting a job of N tasks writes one
-- row, and a round that places a never-placed task inserts its row instead
-- of rewriting a pending one (see ARCHITECTURE.md, "Lazy task rows").
-- Jobs written before this migration have every row already.
ALTER TABLE jobs ADD COLUMN tasks_materialized BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET tasks_materialized = tasks;
ALTER TABLE jobs ADD CONSTRAINT jobs_tasks_materialized
    CHECK (tasks_materialized >= 0 AND tasks_materialized <= tasks);
-- The jobs with never-placed tasks: what the round reads besides the
-- pending task rows.
CREATE INDEX jobs_unmaterialized ON jobs(id) WHERE tasks_materialized < tasks;
-- A round now inserts its tasks' rows, tens of thousands at a time, and the
-- foreign key's per-row trigger (look up and share-lock the job) doubled
-- the cost of that insert. Every writer of task rows (submit no longer
-- does; the round and cancel do) holds the job's row lock, read in the same
-- transaction, and jobs are never deleted, so the key cannot dangle.
ALTER TABLE tasks DROP CONSTRAINT tasks_job_fkey;
-- The tasks holding capacity, by site only: a round inserts one entry per
-- task it places, and the old (site, pool, units) INCLUDE (job) entries,
-- inserted in site order rather than the rows' key order, cost a third of
-- the round's insert. The sums over all active tasks (per pool, per job)
-- read the table instead, as fast at these sizes.
DROP INDEX tasks_active;
CREATE INDEX tasks_active ON tasks(site) WHERE state IN ('placed', 'running');
