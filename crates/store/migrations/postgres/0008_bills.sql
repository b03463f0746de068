-- Bill lines (core::bill::rate): one per usage record, keyed as the
-- record, with what it cost at the price its attempt was placed at.
-- Money is integer micro-yuan; energy whole Wh, carbon whole grams.
CREATE TABLE bill_lines (
    site TEXT COLLATE "C" NOT NULL,
    job TEXT COLLATE "C" NOT NULL,
    task BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    tenant TEXT COLLATE "C" NOT NULL,
    pool TEXT COLLATE "C" NOT NULL,
    units BIGINT NOT NULL,
    wall_ms BIGINT NOT NULL,
    -- The price source: the round that placed the attempt, and its price.
    placed_at_ms BIGINT NOT NULL,
    price_micro BIGINT NOT NULL CHECK (price_micro >= 0),
    compute_micro BIGINT NOT NULL CHECK (compute_micro >= 0),
    -- Data moved, billed with an attempt's first record (0 on the others).
    data_mb BIGINT NOT NULL CHECK (data_mb >= 0),
    transfer_micro_per_gb BIGINT NOT NULL CHECK (transfer_micro_per_gb >= 0),
    transfer_micro BIGINT NOT NULL CHECK (transfer_micro >= 0),
    energy_wh BIGINT NOT NULL CHECK (energy_wh >= 0),
    co2_g BIGINT NOT NULL CHECK (co2_g >= 0),
    scu_micro_hours BIGINT NOT NULL,
    catalogue_version TEXT COLLATE "C" NOT NULL,
    rated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (site, job, task, attempt, seq)
);
CREATE INDEX bill_lines_job ON bill_lines(job, task, attempt, seq);
CREATE INDEX bill_lines_tenant ON bill_lines(tenant, rated_at_ms);
-- A job's rounding remainder (core::bill::rate::Carry): its compute lines
-- always sum to their exact total rounded half up.
ALTER TABLE jobs ADD COLUMN rated_carry BIGINT NOT NULL DEFAULT 0
    CHECK (rated_carry >= 0 AND rated_carry < 3600000);
