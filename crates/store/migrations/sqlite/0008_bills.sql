-- Bill lines (core::bill::rate): one per usage record, keyed as the
-- record, with what it cost at the price its attempt was placed at.
-- Money is integer micro-yuan; energy whole Wh, carbon whole grams.
CREATE TABLE bill_lines (
    site TEXT NOT NULL,
    job TEXT NOT NULL,
    task INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    pool TEXT NOT NULL,
    units INTEGER NOT NULL,
    wall_ms INTEGER NOT NULL,
    -- The price source: the round that placed the attempt, and its price.
    placed_at_ms INTEGER NOT NULL,
    price_micro INTEGER NOT NULL CHECK (price_micro >= 0),
    compute_micro INTEGER NOT NULL CHECK (compute_micro >= 0),
    -- Data moved, billed with an attempt's first record (0 on the others).
    data_mb INTEGER NOT NULL CHECK (data_mb >= 0),
    transfer_micro_per_gb INTEGER NOT NULL CHECK (transfer_micro_per_gb >= 0),
    transfer_micro INTEGER NOT NULL CHECK (transfer_micro >= 0),
    energy_wh INTEGER NOT NULL CHECK (energy_wh >= 0),
    co2_g INTEGER NOT NULL CHECK (co2_g >= 0),
    scu_micro_hours INTEGER NOT NULL,
    catalogue_version TEXT NOT NULL,
    rated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (site, job, task, attempt, seq)
) WITHOUT ROWID;
CREATE INDEX bill_lines_job ON bill_lines(job, task, attempt, seq);
CREATE INDEX bill_lines_tenant ON bill_lines(tenant, rated_at_ms);
-- A job's rounding remainder (core::bill::rate::Carry): its compute lines
-- always sum to their exact total rounded half up.
ALTER TABLE jobs ADD COLUMN rated_carry INTEGER NOT NULL DEFAULT 0
    CHECK (rated_carry >= 0 AND rated_carry < 3600000);
