//! The ledger's storage: accounts, append-only transfers, the open
//! pendings by expiry, floor changes (migration 0007). Every rule is in
//! `suanwang_ledger`; this module loads what a batch needs, runs the core,
//! and writes what it changed.
//!
//! *Inside another transaction.* The `*_in` functions take the caller's
//! transaction, so a round or a report can charge in the same commit as
//! what it charges for. They lock the accounts a batch names with `FOR
//! UPDATE` in id order, after everything else the transaction locked: the
//! store's lock order is jobs, tasks, sites, then ledger accounts.
//! Existing transfers are read after the locks, so a concurrent batch that
//! touched the same accounts is seen whole (committed) or not at all.
//!
//! *Set-wise.* A batch is a handful of statements whatever its size (at
//! most [`BATCH_TRANSFERS_MAX`] transfers): read its accounts (locked), read
//! the transfers it names, insert the new ones in history order, write the
//! changed accounts' totals, add and remove open pendings. Those statements
//! are each database's own ([`LedgerTx`], implemented for both databases'
//! transactions): SQLite reads one JSON array of rows per statement
//! (`json_each`, and `json_group_array` for what it returns, so that one row
//! crosses sqlx's worker thread instead of thousands); PostgreSQL binds one
//! array per column (`unnest`). The rest (new accounts, floors, reads,
//! the check) is shared SQL.
//!
//! *Calling it.* `create_transfers_in(&mut tx, batch, now_ms)` with the
//! transaction of any `Backend` (`B::Tx` is a [`LedgerTx`]); its results
//! are the core's, one per transfer, and a `Database` error means the
//! transaction must be rolled back (PostgreSQL aborts it).
//!
//! *Never changed.* No statement here updates or deletes
//! `ledger_transfers` (`tests/it/ledger.rs` greps for one; both schemas'
//! triggers refuse it).

use std::collections::BTreeSet;

use suanwang_ledger::chain::{Link, Spine};
use suanwang_ledger::{
    Account, AccountId, AccountResult, Asset, Book, Changes, CreateResult, FloorChange, FloorError,
    Kind, Needs, NewAccount, PendingState, Phase, Record, Replay, Side, Totals, Transfer,
    TransferId, BATCH_ACCOUNTS_MAX, BATCH_TRANSFERS_MAX, EXPIRE_BATCH_MAX,
};

use crate::backend::Backend;
use crate::conn::{Arg, Conn, Tx};
use async_trait::async_trait;

use crate::sql::{flag, int, known, values, Named, Stored};
use crate::{LedgerCheck, LedgerTransferRow, Result, StoreError};

/// Rows per statement (12 values each for a transfer): well under both
/// databases' bind limits.
pub(crate) const ROWS_MAX: usize = 1_000;

/// The longest page of a read.
pub const LEDGER_PAGE_MAX: u32 = 1_000;

/// Records per page of `ledger_check`'s replay.
const CHECK_PAGE: i64 = 10_000;

impl Stored for Asset {
    const ALL: &'static [Self] = &Asset::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Stored for Side {
    const ALL: &'static [Self] = &Side::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Stored for Phase {
    const ALL: &'static [Self] = &Phase::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

const ACCOUNT_COLUMNS: &str = "id, asset, side, floor_micro, must_stay_zero, created_at_ms, \
     debits_pending_micro, debits_posted_micro, credits_pending_micro, credits_posted_micro";

/// A `ledger_accounts` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccountSelect {
    id: String,
    asset: String,
    side: String,
    floor_micro: Option<i64>,
    must_stay_zero: i64,
    created_at_ms: i64,
    debits_pending_micro: i64,
    debits_posted_micro: i64,
    credits_pending_micro: i64,
    credits_posted_micro: i64,
    /// The account's history spine (`suanwang_ledger::chain`): read only
    /// by the statements that lock accounts to write them.
    #[sqlx(default)]
    history: String,
}

/// `t.`-qualified, for joins.
const TRANSFER_COLUMNS: &str = "t.seq, t.id, t.debit, t.credit, t.amount_micro, t.asset, t.code, \
     t.phase, t.pending, t.expires_at_ms, t.linked, t.reference, t.at_ms";

/// A `ledger_transfers` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TransferSelect {
    seq: i64,
    id: String,
    debit: String,
    credit: String,
    amount_micro: i64,
    asset: String,
    code: i64,
    phase: String,
    pending: Option<String>,
    expires_at_ms: Option<i64>,
    linked: i64,
    reference: String,
    at_ms: i64,
}

/// A transfer row with, if it is pending, where it stands: whether it is
/// in `ledger_open_pendings`, and the phase of the transfer that resolved
/// it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TransferStateSelect {
    #[sqlx(flatten)]
    transfer: TransferSelect,
    open: i64,
    resolved_by: Option<String>,
}

/// A stored id.
fn id_of<T>(
    column: &str,
    row: Named<'_>,
    text: &str,
    parse: fn(&str) -> Result<T, suanwang_ledger::IdError>,
) -> Result<T> {
    parse(text).map_err(|why| StoreError::Corrupt(format!("{column} of {row} is {text:?}: {why}")))
}

fn account_of(row: AccountSelect) -> Result<Account> {
    let of = Named("ledger account", &row.id);
    let total = |column: &str, value: i64| -> Result<i64> {
        if (0..=suanwang_ledger::TOTAL_MICRO_MAX).contains(&value) {
            Ok(value)
        } else {
            Err(StoreError::Corrupt(format!(
                "ledger_accounts.{column} of {of} is {value}, out of its range"
            )))
        }
    };
    Ok(Account {
        id: id_of("ledger_accounts.id", of, &row.id, AccountId::new)?,
        asset: known("ledger_accounts.asset", of, &row.asset)?,
        side: known("ledger_accounts.side", of, &row.side)?,
        floor_micro: row.floor_micro,
        must_stay_zero: flag("ledger_accounts.must_stay_zero", of, row.must_stay_zero)?,
        created_at_ms: row.created_at_ms,
        totals: Totals {
            debits_pending_micro: total("debits_pending_micro", row.debits_pending_micro)?,
            debits_posted_micro: total("debits_posted_micro", row.debits_posted_micro)?,
            credits_pending_micro: total("credits_pending_micro", row.credits_pending_micro)?,
            credits_posted_micro: total("credits_posted_micro", row.credits_posted_micro)?,
        },
    })
}

fn record_of(row: TransferSelect) -> Result<LedgerTransferRow> {
    let of = Named("ledger transfer", &row.id);
    let pending = |row: &TransferSelect| -> Result<TransferId> {
        let Some(text) = &row.pending else {
            return Err(StoreError::Corrupt(format!(
                "ledger_transfers.pending of {of} is NULL for a {}",
                row.phase
            )));
        };
        id_of("ledger_transfers.pending", of, text, TransferId::new)
    };
    let phase: Phase = known("ledger_transfers.phase", of, &row.phase)?;
    let kind = match phase {
        Phase::Posted => Kind::Posted,
        Phase::Pending => Kind::Pending {
            expires_at_ms: row.expires_at_ms.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "ledger_transfers.expires_at_ms of {of} is NULL for a pending transfer"
                ))
            })?,
        },
        Phase::Post => Kind::Post {
            pending: pending(&row)?,
        },
        Phase::Void => Kind::Void {
            pending: pending(&row)?,
        },
        Phase::Expire => Kind::Expire {
            pending: pending(&row)?,
        },
    };
    let transfer = Transfer {
        id: id_of("ledger_transfers.id", of, &row.id, TransferId::new)?,
        debit: id_of("ledger_transfers.debit", of, &row.debit, AccountId::new)?,
        credit: id_of("ledger_transfers.credit", of, &row.credit, AccountId::new)?,
        amount_micro: row.amount_micro,
        asset: known("ledger_transfers.asset", of, &row.asset)?,
        code: int("ledger_transfers.code", of, row.code)?,
        reference: row.reference,
        kind,
        linked: flag("ledger_transfers.linked", of, row.linked)?,
    };
    Ok(LedgerTransferRow {
        seq: row.seq,
        record: Record {
            transfer,
            at_ms: row.at_ms,
        },
    })
}

/// Where a loaded pending stands, from its row's `open` and `resolved_by`.
fn state_of(row: &TransferStateSelect) -> Result<Option<PendingState>> {
    let t = &row.transfer;
    let of = Named("ledger transfer", &t.id);
    if t.phase != Phase::Pending.as_str() {
        return Ok(None);
    }
    let resolved = match &row.resolved_by {
        None => None,
        Some(phase) => {
            let phase: Phase = known("phase of the resolution", of, phase)?;
            Some(PendingState::after(phase).ok_or_else(|| {
                StoreError::Corrupt(format!("{of} is resolved by a {phase:?} transfer"))
            })?)
        }
    };
    match (row.open, resolved) {
        (1, None) => Ok(Some(PendingState::Open)),
        (0, Some(state)) => Ok(Some(state)),
        (open, resolved) => Err(StoreError::Corrupt(format!(
            "pending {of} is {} in ledger_open_pendings and resolved by {resolved:?}",
            if open == 1 { "open" } else { "not open" }
        ))),
    }
}

/// The history spines of the accounts a batch loaded (sorted by id), and
/// whether the batch linked a transfer to each.
#[derive(Debug, Default)]
struct Spines(Vec<(AccountId, Spine, bool)>);

impl Spines {
    /// Links a new transfer `seq` into the history of `account`, loaded.
    fn push(&mut self, account: &AccountId, seq: i64) -> Link {
        let at = self
            .0
            .binary_search_by(|(id, _, _)| id.cmp(account))
            .expect("a transfer's accounts were loaded");
        let (_, spine, linked) = &mut self.0[at];
        *linked = true;
        spine.push(seq)
    }

    fn get(&self, account: &AccountId) -> Option<&Spine> {
        self.0
            .binary_search_by(|(id, _, _)| id.cmp(account))
            .ok()
            .map(|at| &self.0[at].1)
    }
}

/// Loads the accounts `ids` (sorted, distinct) into `book`, locked in id
/// order; returns their history spines.
async fn load_accounts(
    tx: &mut impl LedgerTx,
    ids: &[AccountId],
    book: &mut Book,
) -> Result<Spines> {
    debug_assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
    if ids.is_empty() {
        return Ok(Spines::default());
    }
    let mut spines = Vec::with_capacity(ids.len());
    for mut row in tx.ledger_accounts(ids).await? {
        let history = std::mem::take(&mut row.history);
        let account = account_of(row)?;
        let id = account.id.clone();
        let spine = Spine::parse(&history).map_err(|why| {
            StoreError::Corrupt(format!("ledger_accounts.history of {id}: {why}"))
        })?;
        book.load_account(account)
            .map_err(|why| StoreError::Corrupt(format!("ledger account {id}: {why}")))?;
        spines.push((id, spine, false));
    }
    assert!(
        spines.windows(2).all(|w| w[0].0 < w[1].0),
        "accounts are read in id order"
    );
    Ok(Spines(spines))
}

/// Loads the transfers `ids` (sorted, distinct) that exist into `book`,
/// each pending one with its state.
async fn load_transfers(tx: &mut impl LedgerTx, ids: &[TransferId], book: &mut Book) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    for row in tx.ledger_transfers(ids).await? {
        let state = state_of(&row)?;
        let record = record_of(row.transfer)?.record;
        let id = record.transfer.id.clone();
        book.load_transfer(record, state)
            .map_err(|why| StoreError::Corrupt(format!("ledger transfer {id}: {why}")))?;
    }
    Ok(())
}

/// A new transfer's row: its seq and, per side, its links in the
/// account's history.
pub(crate) struct NewTransfer<'a> {
    seq: i64,
    record: &'a Record,
    debit: Link,
    credit: Link,
}

// TEMP-TRACE
fn lap(what: &str, since: &mut std::time::Instant) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("LEDGER_TRACE").is_some()) {
        let now = std::time::Instant::now();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{what}: {:.2} ms", (now - *since).as_secs_f64() * 1e3);
        }
        *since = now;
    }
}

/// How [`write`] inserts transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ids {
    /// Loaded: a stored id is a unique violation (a concurrent writer's).
    Loaded,
    /// Presumed new: a stored id is skipped and reported, and nothing else
    /// is written (the caller rolls the insert back).
    Presumed,
}

/// Writes what `book` changed, set-wise; links the new transfers into
/// their accounts' histories (`spines`, as loaded). `false` if `ids` is
/// `Presumed` and one of the new transfers' ids is stored already.
async fn write(
    tx: &mut impl LedgerTx,
    changes: &Changes<'_>,
    mut spines: Spines,
    ids: Ids,
) -> Result<bool> {
    // New accounts are few (a tenant, a provider): plain multi-row VALUES.
    for chunk in changes.created_accounts.chunks(ROWS_MAX) {
        let sql = format!(
            "INSERT INTO ledger_accounts ({ACCOUNT_COLUMNS}) VALUES {}",
            values(chunk.len(), 10)
        );
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 10);
        for a in chunk {
            let t = &a.totals;
            args.extend([
                a.id.as_str().into(),
                a.asset.as_str().into(),
                a.side.as_str().into(),
                a.floor_micro.into(),
                a.must_stay_zero.into(),
                a.created_at_ms.into(),
                t.debits_pending_micro.into(),
                t.debits_posted_micro.into(),
                t.credits_pending_micro.into(),
                t.credits_posted_micro.into(),
            ]);
        }
        tx.execute(&sql, &args).await?;
    }
    let mut t0 = std::time::Instant::now();
    if !changes.records.is_empty() {
        let seqs = tx.next_seqs(changes.records.len()).await?;
        lap("  seqs", &mut t0);
        assert!(
            seqs.len() == changes.records.len() && seqs.windows(2).all(|w| w[0] < w[1]),
            "a seq per new transfer, increasing"
        );
        let rows: Vec<NewTransfer<'_>> = changes
            .records
            .iter()
            .zip(seqs)
            .map(|(record, seq)| NewTransfer {
                seq,
                record,
                debit: spines.push(&record.transfer.debit, seq),
                credit: spines.push(&record.transfer.credit, seq),
            })
            .collect();
        lap("  links", &mut t0);
        let inserted = tx.insert_transfers(&rows, ids == Ids::Presumed).await?;
        lap("  insert", &mut t0);
        if ids == Ids::Presumed && inserted < rows.len() as u64 {
            return Ok(false);
        }
        assert_eq!(
            inserted,
            changes.records.len() as u64,
            "every new transfer inserted"
        );
    }
    // Every account a new transfer names changed its totals, so writing
    // the changed accounts writes every spine that moved.
    for (id, _, linked) in &spines.0 {
        assert!(
            !linked || changes.accounts.binary_search_by(|a| a.id.cmp(id)).is_ok(),
            "the account {id} a new transfer names is written"
        );
    }
    if !changes.accounts.is_empty() {
        let histories: Vec<String> = changes
            .accounts
            .iter()
            .map(|a| {
                spines
                    .get(&a.id)
                    .expect("a changed account was loaded")
                    .to_string()
            })
            .collect();
        let updated = tx.update_totals(&changes.accounts, &histories).await?;
        lap("  totals", &mut t0);
        // Loaded and locked in this transaction.
        assert_eq!(
            updated,
            changes.accounts.len() as u64,
            "every changed account written"
        );
    }
    if !changes.opened.is_empty() {
        tx.open_pendings(&changes.opened).await?;
    }
    if !changes.resolved.is_empty() {
        let removed = tx.close_pendings(&changes.resolved).await?;
        assert_eq!(
            removed,
            changes.resolved.len() as u64,
            "every resolved pending was open"
        );
    }
    for change in changes.floors {
        tx.execute(
            "INSERT INTO ledger_floor_changes (account, before_micro, after_micro, at_ms) \
             VALUES (?, ?, ?, ?)",
            &[
                change.account.as_str().into(),
                change.before_micro.into(),
                change.after_micro.into(),
                change.at_ms.into(),
            ],
        )
        .await?;
        let updated = tx
            .execute(
                "UPDATE ledger_accounts SET floor_micro = ? WHERE id = ?",
                &[change.after_micro.into(), change.account.as_str().into()],
            )
            .await?;
        assert_eq!(updated, 1, "the account whose floor changed is stored");
    }
    Ok(true)
}

/// Creates accounts inside `tx`: one result per account, in order.
pub(crate) async fn create_accounts_in(
    tx: &mut impl LedgerTx,
    batch: &[NewAccount],
    now_ms: i64,
) -> Result<Vec<AccountResult>> {
    if batch.len() > BATCH_ACCOUNTS_MAX {
        return Ok(Book::partial(Needs::default()).create_accounts(batch, now_ms));
    }
    let needs = Needs::of_accounts(batch);
    let mut book = Book::partial(needs.clone());
    let spines = load_accounts(tx, &needs.accounts, &mut book).await?;
    let results = book.create_accounts(batch, now_ms);
    write(tx, &book.changes(), spines, Ids::Loaded).await?;
    Ok(results)
}

/// Applies a batch of transfers inside `tx`: one result per transfer, in
/// order. Locks the accounts it names (in id order: call it after taking
/// the transaction's other locks).
///
/// A concurrent transaction that created one of the batch's ids with other
/// accounts (so that no lock was shared) makes this one fail with a unique
/// violation ([`is_unique_violation`]); run the batch again, and it answers
/// `ExistsWithDifferentFields`.
pub(crate) async fn create_transfers_in(
    tx: &mut impl LedgerTx,
    batch: &[Transfer],
    now_ms: i64,
) -> Result<Vec<CreateResult>> {
    if batch.len() > BATCH_TRANSFERS_MAX {
        return Ok(Book::partial(Needs::default()).create_transfers(batch, now_ms));
    }
    let mut t0 = std::time::Instant::now();
    let needs = Needs::of_transfers(batch);
    lap("needs", &mut t0);
    // First presume the batch's own ids new (a resend is rare): load only
    // the pendings it resolves, and let the insert find a stored id.
    let mut resolved: Vec<TransferId> = batch
        .iter()
        .filter_map(|t| t.kind.pending().cloned())
        .collect();
    resolved.sort_unstable();
    resolved.dedup();
    let mut book = Book::partial(needs.clone());
    let spines = load_accounts(tx, &needs.accounts, &mut book).await?;
    lap("load accounts", &mut t0);
    load_transfers(tx, &resolved, &mut book).await?;
    lap("load pendings", &mut t0);
    let results = book.create_transfers(batch, now_ms);
    lap("core", &mut t0);
    // A transfer that failed may have been a resend (`Exists`): its id is
    // read. One that was created is inserted, and its id found stored if
    // it is.
    let mut failed: Vec<TransferId> = batch
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.is_err())
        .map(|(t, _)| t.id.clone())
        .collect();
    failed.sort_unstable();
    failed.dedup();
    if failed.is_empty() || tx.ledger_transfers(&failed).await?.is_empty() {
        tx.execute("SAVEPOINT ledger_batch", &[]).await?;
        if write(tx, &book.changes(), spines, Ids::Presumed).await? {
            lap("write", &mut t0);
            tx.execute("RELEASE SAVEPOINT ledger_batch", &[]).await?;
            return Ok(results);
        }
        // Rolled back to before the insert, not deleted: the triggers
        // refuse DELETE, and a rollback is no statement on the table.
        tx.execute("ROLLBACK TO SAVEPOINT ledger_batch", &[])
            .await?;
        tx.execute("RELEASE SAVEPOINT ledger_batch", &[]).await?;
    }
    // Some id is stored: apply the batch again with every id it uses.
    let mut book = Book::partial(needs.clone());
    let spines = load_accounts(tx, &needs.accounts, &mut book).await?;
    load_transfers(tx, &needs.transfers, &mut book).await?;
    let results = book.create_transfers(batch, now_ms);
    write(tx, &book.changes(), spines, Ids::Loaded).await?;
    Ok(results)
}

/// Changes an account's floor inside `tx`, recording the change.
pub(crate) async fn set_floor_in(
    tx: &mut impl LedgerTx,
    account: &AccountId,
    floor_micro: Option<i64>,
    now_ms: i64,
) -> Result<Result<FloorChange, FloorError>> {
    let needs = Needs {
        accounts: vec![account.clone()],
        transfers: Vec::new(),
    };
    let mut book = Book::partial(needs.clone());
    let spines = load_accounts(tx, &needs.accounts, &mut book).await?;
    let change = book.set_floor(account, floor_micro, now_ms);
    write(tx, &book.changes(), spines, Ids::Loaded).await?;
    Ok(change)
}

/// Expires, inside `tx`, up to `limit` open pendings due at `now_ms`,
/// soonest first. Returns the expiries created.
pub(crate) async fn expire_pending_in(
    tx: &mut impl LedgerTx,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<TransferId>> {
    let limit = (limit as usize).min(EXPIRE_BATCH_MAX);
    // Candidates, unlocked; their state is read again under the locks.
    let due = pendings_due_in(tx, now_ms, None, limit as u32).await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let needs = Needs::of_expiries(due.iter().map(|row| &row.record.transfer));
    let mut book = Book::partial(needs.clone());
    let spines = load_accounts(tx, &needs.accounts, &mut book).await?;
    load_transfers(tx, &needs.transfers, &mut book).await?;
    let expired = book.expire(now_ms, limit);
    write(tx, &book.changes(), spines, Ids::Loaded).await?;
    Ok(expired)
}

/// Open pendings due at or before `due_by_ms`, by (expiry, id), after
/// `after`.
async fn pendings_due_in(
    conn: &mut impl Conn,
    due_by_ms: i64,
    after: Option<(i64, &TransferId)>,
    limit: u32,
) -> Result<Vec<LedgerTransferRow>> {
    let base = format!(
        "SELECT {TRANSFER_COLUMNS} FROM ledger_open_pendings o \
         JOIN ledger_transfers t ON t.id = o.id WHERE o.expires_at_ms <= ?"
    );
    let order = " ORDER BY o.expires_at_ms, o.id LIMIT ?";
    let limit = limit.min(LEDGER_PAGE_MAX.max(EXPIRE_BATCH_MAX as u32));
    let rows: Vec<TransferSelect> = match after {
        None => {
            conn.fetch_all(&format!("{base}{order}"), &[due_by_ms.into(), limit.into()])
                .await?
        }
        Some((at_ms, id)) => {
            let sql = format!(
                "{base} AND (o.expires_at_ms > ? OR (o.expires_at_ms = ? AND o.id > ?)){order}"
            );
            let args: [Arg<'_>; 5] = [
                due_by_ms.into(),
                at_ms.into(),
                at_ms.into(),
                id.as_str().into(),
                limit.into(),
            ];
            conn.fetch_all(&sql, &args).await?
        }
    };
    rows.into_iter().map(record_of).collect()
}

/// Whether to run a transaction again: the database aborted it only
/// because of a concurrent one, or a concurrent batch created one of its
/// ids first (bounded, [`TRANSIENT_ATTEMPTS_MAX`](crate::TRANSIENT_ATTEMPTS_MAX)).
fn again<T>(outcome: &Result<T>, attempt: &mut u32) -> bool {
    let retry = match outcome {
        Err(error) => error.is_transient() || is_unique_violation(error),
        Ok(_) => false,
    };
    *attempt += 1;
    retry && *attempt <= crate::TRANSIENT_ATTEMPTS_MAX
}

/// A unique index refused a row (an id created by a concurrent writer).
pub(crate) fn is_unique_violation(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
}

pub(crate) async fn create_accounts(
    store: &impl Backend,
    batch: &[NewAccount],
    now_ms: i64,
) -> Result<Vec<AccountResult>> {
    let mut attempt = 1;
    loop {
        let mut tx = store.begin().await?;
        let outcome = match create_accounts_in(&mut tx, batch, now_ms).await {
            Ok(results) => tx.commit().await.map(|()| results),
            Err(error) => Err(error),
        };
        if !again(&outcome, &mut attempt) {
            return outcome;
        }
    }
}

pub(crate) async fn create_transfers(
    store: &impl Backend,
    batch: &[Transfer],
    now_ms: i64,
) -> Result<Vec<CreateResult>> {
    let mut attempt = 1;
    loop {
        let mut tx = store.begin().await?;
        let outcome = match create_transfers_in(&mut tx, batch, now_ms).await {
            Ok(results) => tx.commit().await.map(|()| results),
            Err(error) => Err(error),
        };
        if !again(&outcome, &mut attempt) {
            return outcome;
        }
    }
}

pub(crate) async fn set_floor(
    store: &impl Backend,
    account: &AccountId,
    floor_micro: Option<i64>,
    now_ms: i64,
) -> Result<Result<FloorChange, FloorError>> {
    let mut attempt = 1;
    loop {
        let mut tx = store.begin().await?;
        let outcome = match set_floor_in(&mut tx, account, floor_micro, now_ms).await {
            Ok(change) => tx.commit().await.map(|()| change),
            Err(error) => Err(error),
        };
        if !again(&outcome, &mut attempt) {
            return outcome;
        }
    }
}

pub(crate) async fn expire_pending(
    store: &impl Backend,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<TransferId>> {
    let mut attempt = 1;
    loop {
        let mut tx = store.begin().await?;
        let outcome = match expire_pending_in(&mut tx, now_ms, limit).await {
            Ok(expired) => tx.commit().await.map(|()| expired),
            Err(error) => Err(error),
        };
        if !again(&outcome, &mut attempt) {
            return outcome;
        }
    }
}

pub(crate) async fn account(store: &impl Backend, id: &AccountId) -> Result<Option<Account>> {
    let row: Option<AccountSelect> = store
        .reader()
        .fetch_optional(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = ?"),
            &[id.as_str().into()],
        )
        .await?;
    row.map(account_of).transpose()
}

/// The accounts `ids` that exist, read without locks (a round's view of
/// wallets; its holds are checked again under the locks).
pub(crate) async fn accounts_of(conn: &mut impl Conn, ids: &[AccountId]) -> Result<Vec<Account>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_MAX) {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id IN ({}) ORDER BY id",
            crate::sql::placeholders(chunk.len())
        );
        let args: Vec<Arg<'_>> = chunk.iter().map(|id| id.as_str().into()).collect();
        let rows: Vec<AccountSelect> = conn.fetch_all(&sql, &args).await?;
        for row in rows {
            out.push(account_of(row)?);
        }
    }
    Ok(out)
}

/// Inside `tx`: the accounts `ids` (sorted, distinct) that exist, locked
/// in id order (take the transaction's other locks first).
pub(crate) async fn accounts_locked_in(
    tx: &mut impl LedgerTx,
    ids: &[AccountId],
) -> Result<Vec<Account>> {
    debug_assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    tx.ledger_accounts(ids)
        .await?
        .into_iter()
        .map(account_of)
        .collect()
}

/// The upper bound of the ids starting with `prefix`: every id byte is
/// below `~`.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}~")
}

pub(crate) async fn accounts(
    store: &impl Backend,
    prefix: &str,
    after: Option<&AccountId>,
    limit: u32,
) -> Result<Vec<Account>> {
    let end = prefix_end(prefix);
    let (from, start) = match after {
        Some(after) if after.as_str() >= prefix => ("id > ?", after.as_str()),
        _ => ("id >= ?", prefix),
    };
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE {from} AND id < ? ORDER BY id LIMIT ?"
    );
    let args: [Arg<'_>; 3] = [
        start.into(),
        end.as_str().into(),
        limit.min(LEDGER_PAGE_MAX).into(),
    ];
    let rows: Vec<AccountSelect> = store.reader().fetch_all(&sql, &args).await?;
    rows.into_iter().map(account_of).collect()
}

pub(crate) async fn transfers(
    store: &impl Backend,
    account: &AccountId,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<LedgerTransferRow>> {
    let limit = limit.min(LEDGER_PAGE_MAX);
    let mut conn = store.reader();
    // What was stored before migration 0010, indexed as it was; every
    // linked transfer comes after all of it.
    let sql = format!(
        "SELECT {TRANSFER_COLUMNS} FROM ledger_history_before_0010 h \
         JOIN ledger_transfers t ON t.seq = h.seq \
         WHERE h.account = ? AND h.seq > ? ORDER BY h.seq LIMIT ?"
    );
    let id = account.as_str();
    let args: [Arg<'_>; 3] = [id.into(), after_seq.into(), limit.into()];
    let rows: Vec<TransferSelect> = conn.fetch_all(&sql, &args).await?;
    let mut page: Vec<LedgerTransferRow> =
        rows.into_iter().map(record_of).collect::<Result<_>>()?;
    let left = u64::from(limit) - page.len() as u64;
    if left > 0 {
        let after_seq = page.last().map_or(after_seq, |row| row.seq);
        page.extend(linked_history(&mut conn, account, after_seq, left).await?);
    }
    Ok(page)
}

/// The link `prev` or `jump` of the side of `t` that names the account
/// (bound at each use: `?` is positional). A transfer never names one
/// account on both sides.
fn side_link(link: &str) -> String {
    format!("CASE WHEN t.debit = ? THEN t.debit_{link} ELSE t.credit_{link} END")
}

/// A row of a walk down an account's chain.
#[derive(Debug, sqlx::FromRow)]
struct Step {
    seq: i64,
    depth: i64,
}

/// Up to `limit` transfers of `account` after `after_seq`, in history
/// order, found by following the links of `suanwang_ledger::chain` from the
/// account's newest transfer: down to the first after `after_seq`, down to
/// the last of the page, then back along `prev` (three recursive
/// statements, O(log² n + limit) rows read).
async fn linked_history(
    conn: &mut impl Conn,
    account: &AccountId,
    after_seq: i64,
    limit: u64,
) -> Result<Vec<LedgerTransferRow>> {
    #[derive(Debug, sqlx::FromRow)]
    struct History {
        history: String,
    }
    let id = account.as_str();
    let Some(History { history }) = conn
        .fetch_optional(
            "SELECT history FROM ledger_accounts WHERE id = ?",
            &[id.into()],
        )
        .await?
    else {
        return Ok(Vec::new());
    };
    let spine = Spine::parse(&history)
        .map_err(|why| StoreError::Corrupt(format!("ledger_accounts.history of {id}: {why}")))?;
    let Some(top) = spine.last().filter(|top| *top > after_seq) else {
        return Ok(Vec::new());
    };
    let depth = i64::try_from(spine.depth()).expect("a depth below 2^63");
    let corrupt = |what: &str| {
        StoreError::Corrupt(format!(
            "the history chain of ledger account {id} is broken: {what}"
        ))
    };
    let (prev, jump) = (side_link("prev"), side_link("jump"));
    // Down to the first transfer after `after_seq`: the jump when it does
    // not pass it, else the previous one (`chain::descend`).
    let first: Option<Step> = conn
        .fetch_optional(
            &format!(
                "WITH RECURSIVE down(seq, depth) AS ( \
                 SELECT ?, ? UNION ALL \
                 SELECT CASE WHEN {jump} > ? THEN {jump} ELSE {prev} END, \
                        CASE WHEN {jump} > ? THEN down.depth & (down.depth - 1) \
                             ELSE down.depth - 1 END \
                 FROM down JOIN ledger_transfers t ON t.seq = down.seq \
                 WHERE {jump} > ? OR {prev} > ?) \
                 SELECT seq, depth FROM down ORDER BY seq LIMIT 1"
            ),
            &[
                top.into(),
                depth.into(),
                // THEN … ELSE …
                id.into(),
                after_seq.into(),
                id.into(),
                id.into(),
                // the depth's CASE
                id.into(),
                after_seq.into(),
                // WHERE
                id.into(),
                after_seq.into(),
                id.into(),
                after_seq.into(),
            ],
        )
        .await?;
    let first = first.ok_or_else(|| corrupt("no first transfer"))?;
    let last_depth = (first.depth + i64::try_from(limit).expect("a page") - 1).min(depth);
    // Down to the last transfer of the page, by depth.
    let last: Option<Step> = conn
        .fetch_optional(
            &format!(
                "WITH RECURSIVE down(seq, depth) AS ( \
                 SELECT ?, ? UNION ALL \
                 SELECT CASE WHEN (down.depth & (down.depth - 1)) >= ? THEN {jump} ELSE {prev} END, \
                        CASE WHEN (down.depth & (down.depth - 1)) >= ? \
                             THEN down.depth & (down.depth - 1) ELSE down.depth - 1 END \
                 FROM down JOIN ledger_transfers t ON t.seq = down.seq \
                 WHERE down.depth > ?) \
                 SELECT seq, depth FROM down WHERE depth = ?"
            ),
            &[
                top.into(),
                depth.into(),
                last_depth.into(),
                id.into(),
                id.into(),
                last_depth.into(),
                last_depth.into(),
                last_depth.into(),
            ],
        )
        .await?;
    let last = last.ok_or_else(|| corrupt("no transfer at a depth"))?;
    let count = last.depth - first.depth + 1;
    // Back along `prev`, the page's own rows.
    let rows: Vec<TransferSelect> = conn
        .fetch_all(
            &format!(
                "WITH RECURSIVE back(seq, n) AS ( \
                 SELECT ?, 1 UNION ALL \
                 SELECT {prev}, back.n + 1 \
                 FROM back JOIN ledger_transfers t ON t.seq = back.seq WHERE back.n < ?) \
                 SELECT {TRANSFER_COLUMNS} FROM back JOIN ledger_transfers t ON t.seq = back.seq \
                 ORDER BY t.seq"
            ),
            &[last.seq.into(), id.into(), count.into()],
        )
        .await?;
    let page: Vec<LedgerTransferRow> = rows.into_iter().map(record_of).collect::<Result<_>>()?;
    let names = |row: &LedgerTransferRow| {
        let t = &row.record.transfer;
        t.debit == *account || t.credit == *account
    };
    if page.len() as i64 != count
        || page.first().map(|r| r.seq) != Some(first.seq)
        || !page.iter().all(names)
    {
        return Err(corrupt("a link names another account's transfer"));
    }
    Ok(page)
}

pub(crate) async fn pendings_due(
    store: &impl Backend,
    due_by_ms: i64,
    after: Option<(i64, &TransferId)>,
    limit: u32,
) -> Result<Vec<LedgerTransferRow>> {
    pendings_due_in(
        &mut store.reader(),
        due_by_ms,
        after,
        limit.min(LEDGER_PAGE_MAX),
    )
    .await
}

/// Recomputes every balance from the history (`suanwang_ledger::Replay`,
/// in seq order) and holds the stored totals and open pendings to it, in
/// one transaction so that it reads one snapshot (PostgreSQL: repeatable
/// read; SQLite: the writer's, which waits meanwhile). An operator's
/// check: it reads everything.
pub(crate) async fn check<B: Backend>(store: &B) -> Result<LedgerCheck> {
    let mut tx = store.begin().await?;
    if B::NAME == "postgres" {
        tx.execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            &[],
        )
        .await?;
    }
    let mut stored = Vec::new();
    let mut after = String::new();
    loop {
        let page: Vec<AccountSelect> = tx
            .fetch_all(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id > ? ORDER BY id LIMIT ?"
                ),
                &[after.as_str().into(), CHECK_PAGE.into()],
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for row in page {
            stored.push(account_of(row)?);
        }
    }
    let corrupt = |why: suanwang_ledger::CheckError| StoreError::Corrupt(format!("ledger: {why}"));
    let mut replay = Replay::new(stored.iter().cloned()).map_err(corrupt)?;
    let mut after_seq = 0;
    loop {
        let page: Vec<TransferSelect> = tx
            .fetch_all(
                &format!(
                    "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers t WHERE t.seq > ? \
                     ORDER BY t.seq LIMIT ?"
                ),
                &[after_seq.into(), CHECK_PAGE.into()],
            )
            .await?;
        let Some(last) = page.last() else { break };
        after_seq = last.seq;
        for row in page {
            replay.apply(&record_of(row)?.record).map_err(corrupt)?;
        }
    }
    let replayed = replay.finish().map_err(corrupt)?;
    replayed.compare(&stored).map_err(corrupt)?;
    #[derive(Debug, sqlx::FromRow)]
    struct Open {
        id: String,
        expires_at_ms: i64,
    }
    let open: Vec<Open> = tx
        .fetch_all(
            "SELECT id, expires_at_ms FROM ledger_open_pendings ORDER BY expires_at_ms, id",
            &[],
        )
        .await?;
    let mut open_ids: BTreeSet<(i64, TransferId)> = BTreeSet::new();
    for row in open {
        let of = Named("open pending", &row.id);
        let id = id_of("ledger_open_pendings.id", of, &row.id, TransferId::new)?;
        open_ids.insert((row.expires_at_ms, id));
    }
    replayed
        .compare_open(open_ids.iter().map(|(at, id)| (*at, id)))
        .map_err(corrupt)?;
    tx.commit().await?;
    Ok(LedgerCheck {
        accounts: stored.len() as u64,
        transfers: replayed.transfers,
        open_pendings: open_ids.len() as u64,
    })
}

/// The statements of a batch whose size grows with it, as each database
/// runs them best: one statement each, whatever the batch's size (at most
/// [`BATCH_TRANSFERS_MAX`] transfers, so both databases take them whole).
/// SQLite reads one JSON array of rows (`json_each`); PostgreSQL binds one
/// array per column (`unnest`, `= ANY`). The rest of the ledger's SQL is
/// shared ([`Conn`]).
#[async_trait]
pub(crate) trait LedgerTx: Conn {
    /// The accounts `ids` (sorted, distinct) that exist, locked, in id
    /// order.
    async fn ledger_accounts(&mut self, ids: &[AccountId]) -> Result<Vec<AccountSelect>>;
    /// The transfers `ids` that exist, with their pending state.
    async fn ledger_transfers(&mut self, ids: &[TransferId]) -> Result<Vec<TransferStateSelect>>;
    /// `n` new seqs, increasing, after every seq of this writer's view
    /// (SQLite: after the last; PostgreSQL: from the identity's sequence).
    async fn next_seqs(&mut self, n: usize) -> Result<Vec<i64>>;
    /// Appends `rows` at their seqs; the number inserted. With
    /// `skip_stored`, a row whose id is stored is skipped (not an error).
    async fn insert_transfers(
        &mut self,
        rows: &[NewTransfer<'_>],
        skip_stored: bool,
    ) -> Result<u64>;
    /// Writes the totals and history spines of `accounts`; the number
    /// written.
    async fn update_totals(&mut self, accounts: &[&Account], histories: &[String]) -> Result<u64>;
    async fn open_pendings(&mut self, opened: &[(&TransferId, i64)]) -> Result<()>;
    /// Takes `resolved` out of the open pendings; the number taken.
    async fn close_pendings(&mut self, resolved: &[&TransferId]) -> Result<u64>;
}

/// SQLite: each statement reads its rows from one JSON array bound as
/// text, so a batch is one bind and one step loop in SQLite's own C, not
/// thousands of binds.
mod sqlite {
    use std::fmt::Write as _;

    use super::*;
    use sqlx::Sqlite;

    /// Appends `text` as a JSON string.
    pub(super) fn json_str(out: &mut String, text: &str) {
        out.push('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    /// Rows read as one JSON array (`json_group_array`): one row across
    /// SQLite's worker thread instead of thousands.
    #[derive(Debug, sqlx::FromRow)]
    struct Json {
        rows: String,
    }

    /// `rows` as the schema says they are; a value of another type is
    /// corrupt.
    fn parse<T: serde::de::DeserializeOwned>(table: &str, rows: &str) -> Result<T> {
        serde_json::from_str(rows).map_err(|why| {
            StoreError::Corrupt(format!(
                "a row of {table} does not have its columns' types: {why}"
            ))
        })
    }

    /// Rows per bound statement: at most 1,024 (17 values each, under
    /// SQLite's 32,766), the rest in powers of two, so that the statements
    /// prepared are a dozen shapes whatever the batch sizes.
    fn chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
        const ROWS: usize = 1_024;
        let mut rest = rows;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let n = if rest.len() >= ROWS {
                ROWS
            } else {
                1 << (usize::BITS - 1 - rest.len().leading_zeros())
            };
            let (chunk, after) = rest.split_at(n);
            rest = after;
            Some(chunk)
        })
    }

    /// `["a","b",...]`.
    fn json_ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
        let mut out = String::from("[");
        for (i, id) in ids.enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(&mut out, id);
        }
        out.push(']');
        out
    }

    #[async_trait]
    impl LedgerTx for sqlx::Transaction<'_, Sqlite> {
        async fn ledger_accounts(&mut self, ids: &[AccountId]) -> Result<Vec<AccountSelect>> {
            let ids = json_ids(ids.iter().map(AccountId::as_str));
            let Json { rows } = self
                .fetch_one(
                    "SELECT json_group_array(json_array(a.id, a.asset, a.side, a.floor_micro, \
                     a.must_stay_zero, a.created_at_ms, a.debits_pending_micro, \
                     a.debits_posted_micro, a.credits_pending_micro, a.credits_posted_micro, \
                     a.history)) \
                     AS rows FROM json_each(?) AS j JOIN ledger_accounts a ON a.id = j.value",
                    &[ids.into()],
                )
                .await?;
            type Row = (
                String,
                String,
                String,
                Option<i64>,
                i64,
                i64,
                i64,
                i64,
                i64,
                i64,
                String,
            );
            let rows: Vec<Row> = parse("ledger_accounts", &rows)?;
            Ok(rows
                .into_iter()
                .map(|r| AccountSelect {
                    id: r.0,
                    asset: r.1,
                    side: r.2,
                    floor_micro: r.3,
                    must_stay_zero: r.4,
                    created_at_ms: r.5,
                    debits_pending_micro: r.6,
                    debits_posted_micro: r.7,
                    credits_pending_micro: r.8,
                    credits_posted_micro: r.9,
                    history: r.10,
                })
                .collect())
        }

        async fn ledger_transfers(
            &mut self,
            ids: &[TransferId],
        ) -> Result<Vec<TransferStateSelect>> {
            let ids = json_ids(ids.iter().map(TransferId::as_str));
            let Json { rows } = self
                .fetch_one(
                    "SELECT json_group_array(json_array(t.seq, t.id, t.debit, t.credit, \
                     t.amount_micro, t.asset, t.code, t.phase, t.pending, t.expires_at_ms, \
                     t.linked, t.reference, t.at_ms, \
                     (SELECT COUNT(*) FROM ledger_open_pendings o WHERE o.id = t.id), \
                     r.phase)) AS rows \
                     FROM json_each(?) AS j JOIN ledger_transfers t ON t.id = j.value \
                     LEFT JOIN ledger_transfers r ON r.pending = t.id",
                    &[ids.into()],
                )
                .await?;
            type Row = (
                i64,
                String,
                String,
                String,
                i64,
                String,
                i64,
                String,
                Option<String>,
                Option<i64>,
                i64,
                String,
                i64,
                i64,
                Option<String>,
            );
            let rows: Vec<Row> = parse("ledger_transfers", &rows)?;
            Ok(rows
                .into_iter()
                .map(|r| TransferStateSelect {
                    transfer: TransferSelect {
                        seq: r.0,
                        id: r.1,
                        debit: r.2,
                        credit: r.3,
                        amount_micro: r.4,
                        asset: r.5,
                        code: r.6,
                        phase: r.7,
                        pending: r.8,
                        expires_at_ms: r.9,
                        linked: r.10,
                        reference: r.11,
                        at_ms: r.12,
                    },
                    open: r.13,
                    resolved_by: r.14,
                })
                .collect())
        }

        async fn next_seqs(&mut self, n: usize) -> Result<Vec<i64>> {
            // One writer: nothing is appended between this and the insert.
            #[derive(Debug, sqlx::FromRow)]
            struct Last {
                seq: i64,
            }
            let Last { seq } = self
                .fetch_one(
                    "SELECT COALESCE(MAX(seq), 0) AS seq FROM ledger_transfers",
                    &[],
                )
                .await?;
            Ok((1..=n as i64).map(|i| seq + i).collect())
        }

        async fn insert_transfers(
            &mut self,
            new: &[NewTransfer<'_>],
            skip_stored: bool,
        ) -> Result<u64> {
            const COLUMNS: usize = 17;
            let mut inserted = 0;
            for chunk in chunks(new) {
                let sql =
                    format!(
                    "INSERT INTO ledger_transfers (seq, id, debit, credit, amount_micro, asset, \
                     code, phase, pending, expires_at_ms, linked, reference, at_ms, \
                     debit_prev, debit_jump, credit_prev, credit_jump) VALUES {}{}",
                    values(chunk.len(), COLUMNS),
                    if skip_stored { " ON CONFLICT (id) DO NOTHING" } else { "" }
                );
                let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * COLUMNS);
                for n in chunk {
                    let (r, t) = (n.record, &n.record.transfer);
                    args.extend([
                        n.seq.into(),
                        t.id.as_str().into(),
                        t.debit.as_str().into(),
                        t.credit.as_str().into(),
                        t.amount_micro.into(),
                        t.asset.as_str().into(),
                        i64::from(t.code).into(),
                        t.kind.phase().as_str().into(),
                        t.kind.pending().map(TransferId::as_str).into(),
                        t.kind.expires_at_ms().into(),
                        t.linked.into(),
                        t.reference.as_str().into(),
                        r.at_ms.into(),
                        n.debit.prev.into(),
                        n.debit.jump.into(),
                        n.credit.prev.into(),
                        n.credit.jump.into(),
                    ]);
                }
                inserted += self.execute(&sql, &args).await?;
            }
            Ok(inserted)
        }

        async fn update_totals(
            &mut self,
            accounts: &[&Account],
            histories: &[String],
        ) -> Result<u64> {
            const COLUMNS: usize = 6;
            let rows: Vec<(&Account, &String)> = accounts.iter().copied().zip(histories).collect();
            let mut updated = 0;
            for chunk in chunks(&rows) {
                let sql = format!(
                    "WITH u(id, dp, dd, cp, cc, history) AS (VALUES {}) \
                     UPDATE ledger_accounts SET debits_pending_micro = u.dp, \
                     debits_posted_micro = u.dd, credits_pending_micro = u.cp, \
                     credits_posted_micro = u.cc, history = u.history \
                     FROM u WHERE ledger_accounts.id = u.id",
                    values(chunk.len(), COLUMNS)
                );
                let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * COLUMNS);
                for (a, history) in chunk {
                    let t = &a.totals;
                    args.extend([
                        a.id.as_str().into(),
                        t.debits_pending_micro.into(),
                        t.debits_posted_micro.into(),
                        t.credits_pending_micro.into(),
                        t.credits_posted_micro.into(),
                        history.as_str().into(),
                    ]);
                }
                updated += self.execute(&sql, &args).await?;
            }
            Ok(updated)
        }

        async fn open_pendings(&mut self, opened: &[(&TransferId, i64)]) -> Result<()> {
            let mut rows = String::from("[");
            for (i, (id, expires_at_ms)) in opened.iter().enumerate() {
                if i > 0 {
                    rows.push(',');
                }
                rows.push('[');
                json_str(&mut rows, id.as_str());
                let _ = write!(rows, ",{expires_at_ms}]");
            }
            rows.push(']');
            self.execute(
                "INSERT INTO ledger_open_pendings (id, expires_at_ms) \
                 SELECT value->>0, value->>1 FROM json_each(?)",
                &[rows.into()],
            )
            .await?;
            Ok(())
        }

        async fn close_pendings(&mut self, resolved: &[&TransferId]) -> Result<u64> {
            let ids = json_ids(resolved.iter().map(|id| id.as_str()));
            self.execute(
                "DELETE FROM ledger_open_pendings WHERE id IN (SELECT value FROM json_each(?))",
                &[ids.into()],
            )
            .await
        }
    }
}

/// PostgreSQL: one array per column, bound in the binary protocol.
mod postgres {
    use super::*;

    /// The step of `ledger_transfers.seq`'s sequence (migration 0010).
    const SEQ_BLOCK: usize = 10_000;
    const _: () = assert!(BATCH_TRANSFERS_MAX <= SEQ_BLOCK && EXPIRE_BATCH_MAX <= SEQ_BLOCK);
    use sqlx::Postgres;

    #[async_trait]
    impl LedgerTx for sqlx::Transaction<'_, Postgres> {
        async fn ledger_accounts(&mut self, ids: &[AccountId]) -> Result<Vec<AccountSelect>> {
            // A batch's statements are many rows each, and PostgreSQL's
            // cost estimate for them passes the JIT threshold: compiling
            // them would cost more than running them. This transaction
            // only (every batch reads its accounts first).
            sqlx::query("SET LOCAL jit = off")
                .execute(&mut **self)
                .await?;
            let ids: Vec<&str> = ids.iter().map(AccountId::as_str).collect();
            // Locked as returned: in id order, the lock order.
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS}, history FROM ledger_accounts WHERE id = ANY($1) \
                 ORDER BY id FOR UPDATE"
            );
            Ok(sqlx::query_as(&sql)
                .bind(&ids)
                .fetch_all(&mut **self)
                .await?)
        }

        async fn ledger_transfers(
            &mut self,
            ids: &[TransferId],
        ) -> Result<Vec<TransferStateSelect>> {
            let ids: Vec<&str> = ids.iter().map(TransferId::as_str).collect();
            // One index probe per id (`LIMIT 1` keeps the planner from
            // flattening the lateral into a hash join over the whole
            // history, which it prefers for thousands of ids).
            let sql = format!(
                "SELECT {TRANSFER_COLUMNS}, \
                 (SELECT COUNT(*) FROM ledger_open_pendings o WHERE o.id = t.id) AS open, \
                 r.phase AS resolved_by \
                 FROM unnest($1::text[]) AS j(id) \
                 JOIN LATERAL (SELECT * FROM ledger_transfers x WHERE x.id = j.id LIMIT 1) AS t \
                 ON true \
                 LEFT JOIN ledger_transfers r ON r.pending = t.id"
            );
            Ok(sqlx::query_as(&sql)
                .bind(&ids)
                .fetch_all(&mut **self)
                .await?)
        }

        async fn next_seqs(&mut self, n: usize) -> Result<Vec<i64>> {
            // The identity's sequence counts in steps of SEQ_BLOCK
            // (migration 0010): one `nextval` reserves a batch's seqs, and
            // concurrent writers never share one. 8,000 `nextval`s took 28
            // ms; the gaps cost nothing (seq is an order, not a count).
            assert!(n <= SEQ_BLOCK, "a batch's seqs fit one block");
            let first: i64 = sqlx::query_scalar(
                "SELECT nextval(pg_get_serial_sequence('ledger_transfers', 'seq'))",
            )
            .fetch_one(&mut **self)
            .await?;
            Ok((0..n as i64).map(|i| first + i).collect())
        }

        async fn insert_transfers(
            &mut self,
            new: &[NewTransfer<'_>],
            skip_stored: bool,
        ) -> Result<u64> {
            let n = new.len();
            let column = |link: fn(&NewTransfer<'_>) -> Option<i64>| -> Vec<Option<i64>> {
                new.iter().map(link).collect()
            };
            let (mut seqs, mut ids, mut debits, mut credits) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut amounts, mut assets, mut codes, mut phases) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut pendings, mut expires, mut linked, mut references, mut ats) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for row in new {
                let (r, t) = (row.record, &row.record.transfer);
                seqs.push(row.seq);
                ids.push(t.id.as_str());
                debits.push(t.debit.as_str());
                credits.push(t.credit.as_str());
                amounts.push(t.amount_micro);
                assets.push(t.asset.as_str());
                codes.push(i64::from(t.code));
                phases.push(t.kind.phase().as_str());
                pendings.push(t.kind.pending().map(TransferId::as_str));
                expires.push(t.kind.expires_at_ms());
                linked.push(i64::from(t.linked));
                references.push(t.reference.as_str());
                ats.push(r.at_ms);
            }
            let sql = format!(
                "INSERT INTO ledger_transfers (seq, id, debit, credit, amount_micro, asset, \
                 code, phase, pending, expires_at_ms, linked, reference, at_ms, \
                 debit_prev, debit_jump, credit_prev, credit_jump) \
                 OVERRIDING SYSTEM VALUE \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], \
                             $5::bigint[], $6::text[], $7::bigint[], $8::text[], $9::text[], \
                             $10::bigint[], $11::bigint[], $12::text[], $13::bigint[], \
                             $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[]){}",
                if skip_stored {
                    " ON CONFLICT (id) DO NOTHING"
                } else {
                    ""
                }
            );
            let done = sqlx::query(&sql)
                .bind(&seqs)
                .bind(&ids)
                .bind(&debits)
                .bind(&credits)
                .bind(&amounts)
                .bind(&assets)
                .bind(&codes)
                .bind(&phases)
                .bind(&pendings)
                .bind(&expires)
                .bind(&linked)
                .bind(&references)
                .bind(&ats)
                .bind(column(|r| r.debit.prev))
                .bind(column(|r| r.debit.jump))
                .bind(column(|r| r.credit.prev))
                .bind(column(|r| r.credit.jump))
                .execute(&mut **self)
                .await?;
            Ok(done.rows_affected())
        }

        async fn update_totals(
            &mut self,
            accounts: &[&Account],
            histories: &[String],
        ) -> Result<u64> {
            let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
            let column = |total: fn(&Totals) -> i64| -> Vec<i64> {
                accounts.iter().map(|a| total(&a.totals)).collect()
            };
            let done = sqlx::query(
                "UPDATE ledger_accounts a SET debits_pending_micro = u.dp, \
                 debits_posted_micro = u.dd, credits_pending_micro = u.cp, \
                 credits_posted_micro = u.cc, history = u.history \
                 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
                             $6::text[]) \
                      AS u(id, dp, dd, cp, cc, history) \
                 WHERE a.id = u.id",
            )
            .bind(&ids)
            .bind(column(|t| t.debits_pending_micro))
            .bind(column(|t| t.debits_posted_micro))
            .bind(column(|t| t.credits_pending_micro))
            .bind(column(|t| t.credits_posted_micro))
            .bind(histories)
            .execute(&mut **self)
            .await?;
            Ok(done.rows_affected())
        }

        async fn open_pendings(&mut self, opened: &[(&TransferId, i64)]) -> Result<()> {
            let ids: Vec<&str> = opened.iter().map(|(id, _)| id.as_str()).collect();
            let expires: Vec<i64> = opened.iter().map(|(_, at)| *at).collect();
            sqlx::query(
                "INSERT INTO ledger_open_pendings (id, expires_at_ms) \
                 SELECT * FROM unnest($1::text[], $2::bigint[])",
            )
            .bind(&ids)
            .bind(&expires)
            .execute(&mut **self)
            .await?;
            Ok(())
        }

        async fn close_pendings(&mut self, resolved: &[&TransferId]) -> Result<u64> {
            let ids: Vec<&str> = resolved.iter().map(|id| id.as_str()).collect();
            let done = sqlx::query("DELETE FROM ledger_open_pendings WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&mut **self)
                .await?;
            Ok(done.rows_affected())
        }
    }
}
