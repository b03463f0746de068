-- Prices at placement (core::price, pay-as-clear), integer micro-yuan.
--
-- What each task's latest attempt was placed at: the round's time, its
-- pool's market price per unit-hour (list + clearing), the price per GB of
-- moving the job's data to the pool's region, the job's bid and data. NULL:
-- never placed (or placed before this migration, when no price was kept).
ALTER TABLE tasks ADD COLUMN placed_at_ms BIGINT;
ALTER TABLE tasks ADD COLUMN price_micro BIGINT CHECK (price_micro >= 0);
ALTER TABLE tasks ADD COLUMN transfer_micro_per_gb BIGINT CHECK (transfer_micro_per_gb >= 0);
ALTER TABLE tasks ADD COLUMN bid_micro BIGINT CHECK (bid_micro >= price_micro);
-- The job's data in whole MB, moved (and billed) once per attempt.
ALTER TABLE tasks ADD COLUMN data_mb BIGINT CHECK (data_mb >= 0);
-- Each pool's latest price row (a copy of its newest pool_prices row, so
-- the market view and the round read it without a scan). NULL: never
-- offered in a round.
ALTER TABLE pools ADD COLUMN priced_at_ms BIGINT;
ALTER TABLE pools ADD COLUMN priced_list_micro BIGINT CHECK (priced_list_micro >= 0);
ALTER TABLE pools ADD COLUMN clearing_micro BIGINT CHECK (clearing_micro >= 0);
-- A pool's price history: a row only when its list or clearing price
-- changed from its previous row, pruned to the newest rows per pool.
CREATE TABLE pool_prices (
    pool TEXT COLLATE "C" NOT NULL REFERENCES pools(id),
    at_ms BIGINT NOT NULL,
    list_micro BIGINT NOT NULL CHECK (list_micro >= 0),
    clearing_micro BIGINT NOT NULL CHECK (clearing_micro >= 0),
    PRIMARY KEY (pool, at_ms)
);
