-- The ledger's history without per-account indexes (crates/ledger's
-- `chain` module says why): each transfer links, per side, to two earlier
-- transfers of that account, and each account keeps its spine, so an
-- account's history is read by following links from its newest transfer.
-- The two (account, seq) indexes cost two random index entries per
-- transfer, which tripled the cost of a batch's insert.

-- Per side: the account's transfer before this one, and the one at depth
-- `depth & (depth - 1)`. NULL on transfers stored before this migration
-- (their history is in ledger_history_before_0010) and where there is none.
ALTER TABLE ledger_transfers ADD COLUMN debit_prev BIGINT;
ALTER TABLE ledger_transfers ADD COLUMN debit_jump BIGINT;
ALTER TABLE ledger_transfers ADD COLUMN credit_prev BIGINT;
ALTER TABLE ledger_transfers ADD COLUMN credit_jump BIGINT;

-- "DEPTH SEQ…": the transfers linked so far and the seqs the next link
-- needs (suanwang_ledger::chain::Spine); '' before the first.
ALTER TABLE ledger_accounts ADD COLUMN history TEXT COLLATE "C" NOT NULL DEFAULT '';

-- The history stored before this migration, indexed once, as it was.
CREATE TABLE ledger_history_before_0010 (
    account TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (account, seq)
);
INSERT INTO ledger_history_before_0010 (account, seq)
    SELECT debit, seq FROM ledger_transfers
    UNION ALL
    SELECT credit, seq FROM ledger_transfers;

DROP INDEX ledger_transfers_debit;
DROP INDEX ledger_transfers_credit;

-- A batch's seqs are reserved by one nextval: the sequence steps by the
-- largest batch (suanwang_ledger::BATCH_TRANSFERS_MAX), and the store
-- numbers the batch's transfers from the value it took. Seqs stay in
-- history order, with gaps.
ALTER TABLE ledger_transfers ALTER COLUMN seq SET INCREMENT BY 10000;
