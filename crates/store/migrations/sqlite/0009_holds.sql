-- Holds (core::bill::HoldRef): the tasks one round placed of one job,
-- charged together. The money is in the ledger (the pending transfer
-- hold:{job}:{round_at_ms} and its settlement chains); these rows are the
-- bookkeeping that decides when to settle and what is still due.
CREATE TABLE holds (
    job TEXT NOT NULL,
    round_at_ms INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    -- The region the job's data is in: the carrier link of each site.
    data_region TEXT NOT NULL,
    -- Reserved on the wallet at placement (0: the placements were free).
    amount_micro INTEGER NOT NULL CHECK (amount_micro >= 0),
    -- Attempts placed, and those that ended since.
    attempts INTEGER NOT NULL CHECK (attempts > 0),
    ended INTEGER NOT NULL DEFAULT 0 CHECK (ended >= 0 AND ended <= attempts),
    -- Settlements made: 0 while the hold is open.
    charges INTEGER NOT NULL DEFAULT 0 CHECK (charges >= 0),
    PRIMARY KEY (job, round_at_ms)
) WITHOUT ROWID;
-- What was rated against a hold per site, and what of it was charged.
CREATE TABLE hold_sites (
    job TEXT NOT NULL,
    round_at_ms INTEGER NOT NULL,
    site TEXT NOT NULL,
    rated_compute_micro INTEGER NOT NULL DEFAULT 0 CHECK (rated_compute_micro >= 0),
    rated_transfer_micro INTEGER NOT NULL DEFAULT 0 CHECK (rated_transfer_micro >= 0),
    charged_compute_micro INTEGER NOT NULL DEFAULT 0
        CHECK (charged_compute_micro >= 0 AND charged_compute_micro <= rated_compute_micro),
    charged_transfer_micro INTEGER NOT NULL DEFAULT 0
        CHECK (charged_transfer_micro >= 0 AND charged_transfer_micro <= rated_transfer_micro),
    PRIMARY KEY (job, round_at_ms, site)
) WITHOUT ROWID;
