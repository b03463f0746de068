-- `bill show` for a job (`GET /v1/bills?job=`) reads a page of the job's
-- lines in key order and the sums over all of them. The job's index now
-- holds the key in that order (the site last) and, as included columns,
-- every column the sums and the tenant filter read, so both can be
-- index-only scans. Same number of indexes as before: this one replaces
-- bill_lines_job.
DROP INDEX bill_lines_job;
CREATE INDEX bill_lines_job ON bill_lines (job, task, attempt, seq, site)
    INCLUDE (tenant, units, wall_ms, compute_micro, transfer_micro, energy_wh, co2_g, scu_micro_hours);
