-- The double-entry ledger (crates/ledger: every rule is there; this is
-- storage). Money is integer micro-yuan; times are ms since the epoch.
--
-- Accounts with their four running totals, changed only by the ledger's
-- core inside the transaction that appends the transfers that move them
-- (which locks them, in id order, last: after jobs, tasks and sites).
CREATE TABLE ledger_accounts (
    id TEXT COLLATE "C" PRIMARY KEY,
    asset TEXT COLLATE "C" NOT NULL,
    side TEXT COLLATE "C" NOT NULL,
    -- The lowest available balance on the normal side; NULL: none.
    floor_micro BIGINT,
    must_stay_zero BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    debits_pending_micro BIGINT NOT NULL,
    debits_posted_micro BIGINT NOT NULL,
    credits_pending_micro BIGINT NOT NULL,
    credits_posted_micro BIGINT NOT NULL
);

-- Transfers, append-only: never updated or deleted (the trigger below
-- refuses it; a correction is a new transfer). `seq` is history order.
-- `debit` and `credit` have no foreign key: the core checked both exist
-- under their row locks, accounts are never deleted, and the per-row
-- trigger would double the cost of a batch's insert.
CREATE TABLE ledger_transfers (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    debit TEXT COLLATE "C" NOT NULL,
    credit TEXT COLLATE "C" NOT NULL,
    amount_micro BIGINT NOT NULL CHECK (amount_micro > 0),
    asset TEXT COLLATE "C" NOT NULL,
    code BIGINT NOT NULL,
    -- posted, pending, post, void or expire (suanwang_ledger::Phase).
    phase TEXT COLLATE "C" NOT NULL,
    -- post, void, expire: the pending transfer it resolves.
    pending TEXT COLLATE "C",
    -- pending: when it stops being postable.
    expires_at_ms BIGINT,
    linked BIGINT NOT NULL,
    reference TEXT COLLATE "C" NOT NULL,
    at_ms BIGINT NOT NULL
);
-- An account's history, in order.
CREATE INDEX ledger_transfers_debit ON ledger_transfers(debit, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers(credit, seq);
-- A pending is resolved (posted, voided, expired) at most once, and its
-- resolution is found by it.
CREATE UNIQUE INDEX ledger_transfers_pending ON ledger_transfers(pending) WHERE pending IS NOT NULL;
CREATE FUNCTION ledger_transfers_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are append-only';
END
$$;
CREATE TRIGGER ledger_transfers_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfers_append_only();

-- The pending transfers still open, by expiry: an index the ledger keeps
-- beside the history (a row in while open, out when resolved), so that
-- finding what is due reads only what is open.
CREATE TABLE ledger_open_pendings (
    id TEXT COLLATE "C" PRIMARY KEY,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX ledger_open_pendings_expiry ON ledger_open_pendings(expires_at_ms, id);

-- Every change of an account's floor (credit granted or withdrawn).
CREATE TABLE ledger_floor_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account TEXT COLLATE "C" NOT NULL REFERENCES ledger_accounts(id),
    before_micro BIGINT,
    after_micro BIGINT,
    at_ms BIGINT NOT NULL
);
