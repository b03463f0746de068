-- The double-entry ledger (crates/ledger: every rule is there; this is
-- storage). Money is integer micro-yuan; times are ms since the epoch.
--
-- Accounts with their four running totals, changed only by the ledger's
-- core inside the transaction that appends the transfers that move them.
CREATE TABLE ledger_accounts (
    id TEXT PRIMARY KEY,
    asset TEXT NOT NULL,
    side TEXT NOT NULL,
    -- The lowest available balance on the normal side; NULL: none.
    floor_micro INTEGER,
    must_stay_zero INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    debits_pending_micro INTEGER NOT NULL,
    debits_posted_micro INTEGER NOT NULL,
    credits_pending_micro INTEGER NOT NULL,
    credits_posted_micro INTEGER NOT NULL
) WITHOUT ROWID;

-- Transfers, append-only: never updated or deleted (the triggers below
-- refuse it; a correction is a new transfer). `seq` is history order.
-- `debit` and `credit` have no foreign key: the core checked both exist
-- under their row locks, accounts are never deleted, and the per-row check
-- would double the cost of a batch's insert.
CREATE TABLE ledger_transfers (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount_micro INTEGER NOT NULL CHECK (amount_micro > 0),
    asset TEXT NOT NULL,
    code INTEGER NOT NULL,
    -- posted, pending, post, void or expire (suanwang_ledger::Phase).
    phase TEXT NOT NULL,
    -- post, void, expire: the pending transfer it resolves.
    pending TEXT,
    -- pending: when it stops being postable.
    expires_at_ms INTEGER,
    linked INTEGER NOT NULL,
    reference TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
-- An account's history, in order.
CREATE INDEX ledger_transfers_debit ON ledger_transfers(debit, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers(credit, seq);
-- A pending is resolved (posted, voided, expired) at most once, and its
-- resolution is found by it.
CREATE UNIQUE INDEX ledger_transfers_pending ON ledger_transfers(pending) WHERE pending IS NOT NULL;
CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
BEGIN
    SELECT RAISE(ABORT, 'ledger transfers are append-only');
END;
CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
BEGIN
    SELECT RAISE(ABORT, 'ledger transfers are append-only');
END;

-- The pending transfers still open, by expiry: an index the ledger keeps
-- beside the history (a row in while open, out when resolved), so that
-- finding what is due reads only what is open.
CREATE TABLE ledger_open_pendings (
    id TEXT PRIMARY KEY,
    expires_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ledger_open_pendings_expiry ON ledger_open_pendings(expires_at_ms, id);

-- Every change of an account's floor (credit granted or withdrawn).
CREATE TABLE ledger_floor_changes (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL REFERENCES ledger_accounts(id),
    before_micro INTEGER,
    after_micro INTEGER,
    at_ms INTEGER NOT NULL
);
