-- Holds (core::bill::HoldRef): the tasks one round placed of one job,
-- charged together. The money is in the ledger (the pending transfer
-- hold:{job}:{round_at_ms} and its settlement chains); these rows are the
-- bookkeeping that decides when to settle and what is still due.
CREATE TABLE holds (
    job TEXT COLLATE "C" NOT NULL,
    round_at_ms BIGINT NOT NULL,
    tenant TEXT COLLATE "C" NOT NULL,
    -- The region the job's data is in: the carrier link of each site.
    data_region TEXT COLLATE "C" NOT NULL,
    -- Reserved on the wallet at placement (0: the placements were free).
    amount_micro BIGINT NOT NULL CHECK (amount_micro >= 0),
    -- Attempts placed, and those that ended since.
    attempts BIGINT NOT NULL CHECK (attempts > 0),
    ended BIGINT NOT NULL DEFAULT 0 CHECK (ended >= 0 AND ended <= attempts),
    -- Settlements made: 0 while the hold is open.
    charges BIGINT NOT NULL DEFAULT 0 CHECK (charges >= 0),
    PRIMARY KEY (job, round_at_ms)
);
-- What was rated against a hold per site, and what of it was charged.
CREATE TABLE hold_sites (
    job TEXT COLLATE "C" NOT NULL,
    round_at_ms BIGINT NOT NULL,
    site TEXT COLLATE "C" NOT NULL,
    rated_compute_micro BIGINT NOT NULL DEFAULT 0 CHECK (rated_compute_micro >= 0),
    rated_transfer_micro BIGINT NOT NULL DEFAULT 0 CHECK (rated_transfer_micro >= 0),
    charged_compute_micro BIGINT NOT NULL DEFAULT 0
        CHECK (charged_compute_micro >= 0 AND charged_compute_micro <= rated_compute_micro),
    charged_transfer_micro BIGINT NOT NULL DEFAULT 0
        CHECK (charged_transfer_micro >= 0 AND charged_transfer_micro <= rated_transfer_micro),
    PRIMARY KEY (job, round_at_ms, site)
);
