//! The rules, applied to a [`Book`]: the part of the ledger a batch needs.
//!
//! A book holds some accounts, some transfers (with the state of each
//! pending one) and the open pendings among them by expiry. The in-memory
//! [`Ledger`](crate::Ledger) is a book that holds everything; the store
//! loads, inside its transaction, only what [`Needs::of_transfers`] lists
//! for a batch (the accounts it names, locked; the transfers whose ids it
//! uses or whose pendings it resolves), applies the batch here, and writes
//! what [`Book::changes`] returns. Both run the same code, so the simulator,
//! the property tests and the server cannot disagree about a rule.
//!
//! A partial book knows what it was loaded for: looking up an id it was not
//! asked to load is a bug of its caller (it would read "does not exist"
//! where the database may hold it), and panics.
//!
//! *Checks, in order, per transfer* (the first that fails is the answer):
//! the batch size; the id exists (`Exists` if the content is the same);
//! the id and kind are the caller's to use; amount, code, reference, two
//! different accounts, a pending's id length and expiry; both accounts
//! exist and hold the transfer's asset (and, for a pending one, neither
//! must stay zero); the pending it resolves exists, is
//! pending, names the same accounts and asset, is open and not past its
//! expiry, and covers the amount; no total passes its limit; neither
//! account falls below its floor. Then, at the end of its chain, every
//! must-stay-zero account it touched is zero.
//!
//! *Postconditions* (asserted after every call, release builds included:
//! this is money): over the accounts changed, debits changed as much as
//! credits, posted and pending alike; each is within its floor and limits;
//! a must-stay-zero account is zero; transfers were only appended.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::account::{
    floor_in_range, Account, AccountError, FloorChange, FloorError, NewAccount, Totals,
    TOTAL_MICRO_MAX,
};
use crate::id::{AccountId, TransferId, PENDING_ID_LEN_MAX};
use crate::index::{hash_id, IdIndex};
use crate::transfer::{
    codes, Applied, CreateResult, Kind, PendingState, Record, Transfer, TransferError,
    AMOUNT_MICRO_MAX, PENDING_TIMEOUT_MS_MAX, REFERENCE_LEN_MAX,
};

/// A lookup table by id. Only ever looked up, never iterated for a
/// decision, so the hash may be fast rather than keyed: ids are made by the
/// server from its own ids (jobs, tasks, tenants), not chosen by a caller
/// who could aim for collisions.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// FxHash's mixing step over 8-byte words, with a final rotation so that
/// the low bits (the bucket index) depend on every byte.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// The most transfers in one batch.
pub const BATCH_TRANSFERS_MAX: usize = 10_000;
/// The most accounts created in one batch.
pub const BATCH_ACCOUNTS_MAX: usize = 10_000;
/// The most pendings one `expire` call expires.
pub const EXPIRE_BATCH_MAX: usize = 10_000;

/// One result per account of a batch.
pub type AccountResult = Result<Applied, AccountError>;

/// What a caller must load into a partial [`Book`] before applying a
/// batch: sorted, distinct.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Every account the batch names (lock them, in this order).
    pub accounts: Vec<AccountId>,
    /// Every transfer id the batch uses, and every pending it resolves
    /// (load those that exist, with each pending's state).
    pub transfers: Vec<TransferId>,
}

impl Needs {
    pub fn of_transfers(batch: &[Transfer]) -> Needs {
        let mut accounts = Vec::with_capacity(batch.len() * 2);
        let mut transfers = Vec::with_capacity(batch.len());
        for transfer in batch {
            accounts.push(transfer.debit.clone());
            accounts.push(transfer.credit.clone());
            transfers.push(transfer.id.clone());
            if let Some(pending) = transfer.kind.pending() {
                transfers.push(pending.clone());
            }
        }
        Needs::sorted(accounts, transfers)
    }

    pub fn of_accounts(batch: &[NewAccount]) -> Needs {
        let accounts = batch.iter().map(|account| account.id.clone()).collect();
        Needs::sorted(accounts, Vec::new())
    }

    /// What expiring these pending transfers needs: their accounts, and
    /// themselves.
    pub fn of_expiries<'a>(pendings: impl IntoIterator<Item = &'a Transfer>) -> Needs {
        let (mut accounts, mut transfers) = (Vec::new(), Vec::new());
        for pending in pendings {
            accounts.push(pending.debit.clone());
            accounts.push(pending.credit.clone());
            transfers.push(pending.id.clone());
        }
        Needs::sorted(accounts, transfers)
    }

    fn sorted(mut accounts: Vec<AccountId>, mut transfers: Vec<TransferId>) -> Needs {
        accounts.sort_unstable();
        accounts.dedup();
        transfers.sort_unstable();
        transfers.dedup();
        Needs {
            accounts,
            transfers,
        }
    }
}

/// Why loaded data cannot be a book's: the store reports it as corrupt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("account {id} was loaded twice")]
    DuplicateAccount { id: AccountId },
    #[error("transfer {id} was loaded twice")]
    DuplicateTransfer { id: TransferId },
    #[error("account {id} has a total outside 0..={TOTAL_MICRO_MAX}")]
    TotalsOutOfRange { id: AccountId },
    #[error("account {id} is below its floor")]
    BelowFloor { id: AccountId },
    #[error("must-stay-zero account {id} is not zero, or has a floor")]
    NotZero { id: AccountId },
    #[error("transfer {id} is not valid: {why}")]
    InvalidTransfer { id: TransferId, why: TransferError },
    #[error("transfer {id} is pending but has no state, or has one but is not pending")]
    StateMismatch { id: TransferId },
}

/// Who asks for a transfer: only the ledger may expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Caller,
    Ledger,
}

/// How to undo what a chain applied, newest last.
#[derive(Clone, Debug)]
enum Undo {
    /// An account's totals before.
    Totals { account: u32, totals: Totals },
    /// The last record was created (pop it).
    Created,
    /// The pending at this index was open, due at `expires_at_ms`.
    Resolved { pending: u32, expires_at_ms: i64 },
}

/// What a partial book may look up: exactly what it was loaded for.
#[derive(Clone, Debug)]
struct Coverage {
    needs: Needs,
}

/// Accounts, transfers and the open pendings among them; see the module
/// doc.
#[derive(Clone, Debug, Default)]
pub struct Book {
    accounts: Vec<Account>,
    /// Each account's index by its id.
    account_at: IdIndex,
    /// Loaded (or, in a ledger, the whole history), then created.
    records: Vec<Record>,
    /// Each record's index by its id ([`IdIndex`]).
    record_at: IdIndex,
    /// Per record: its state if it is a pending transfer.
    states: Vec<Option<PendingState>>,
    /// Open pendings by (expiry, id).
    open: BTreeSet<(i64, TransferId)>,
    /// `None`: the book holds everything (a ledger).
    coverage: Option<Coverage>,

    // Since the book was loaded or last sealed.
    /// Records before this index were there then.
    sealed_records: usize,
    /// Accounts before this index were there then.
    sealed_accounts: usize,
    epoch: u64,
    /// Per account: the epoch in which it was last touched.
    touched: Vec<u64>,
    /// Accounts touched, each once, with their totals then.
    dirty: Vec<(u32, Totals)>,
    /// Indexes of the pendings resolved.
    resolved: Vec<u32>,
    floors: Vec<FloorChange>,

    /// Per transfer of the batch being applied: the hashes of its id and
    /// of the pending it resolves (0 if none), computed once.
    hashes: Vec<[u64; 2]>,

    // The chain being applied.
    undo: Vec<Undo>,
    /// Must-stay-zero accounts the chain touched.
    chain_zero: Vec<u32>,
}

/// What a book changed since it was loaded (or last sealed): what the
/// store writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes<'a> {
    /// Created transfers, in the order they were applied: history order.
    pub records: &'a [Record],
    /// Created accounts, in the order they were created.
    pub created_accounts: Vec<&'a Account>,
    /// Accounts that existed before and whose totals changed, in id order,
    /// with their new totals.
    pub accounts: Vec<&'a Account>,
    /// Pending transfers created and still open, with their expiry.
    pub opened: Vec<(&'a TransferId, i64)>,
    /// Pending transfers that were open before and are resolved now.
    pub resolved: Vec<&'a TransferId>,
    /// Floor changes, in order.
    pub floors: &'a [FloorChange],
}

impl Book {
    /// A book that will hold exactly what `needs` lists (those that exist).
    pub fn partial(needs: Needs) -> Book {
        Book {
            coverage: Some(Coverage { needs }),
            ..Book::default()
        }
    }

    /// A book that holds everything there is (starting empty).
    pub fn complete() -> Book {
        Book::default()
    }

    /// A complete book with room for `accounts` and `transfers`.
    pub fn with_capacity(accounts: usize, transfers: usize) -> Book {
        let mut book = Book::complete();
        book.accounts.reserve(accounts);
        book.account_at = IdIndex::with_capacity(accounts);
        book.touched.reserve(accounts);
        book.records.reserve(transfers);
        book.record_at = IdIndex::with_capacity(transfers);
        book.states.reserve(transfers);
        book
    }

    /// Adds an account as stored.
    pub fn load_account(&mut self, account: Account) -> Result<(), LoadError> {
        assert!(
            self.records.len() == self.sealed_records && self.dirty.is_empty(),
            "a book is loaded before it is used"
        );
        let id = account.id.clone();
        let hash = hash_id(id.as_str());
        if self.find_account(hash, &id).is_some() {
            return Err(LoadError::DuplicateAccount { id });
        }
        if !account.totals.in_range() {
            return Err(LoadError::TotalsOutOfRange { id });
        }
        if !account.within_floor() {
            return Err(LoadError::BelowFloor { id });
        }
        if account.must_stay_zero && (!account.is_zero() || account.floor_micro.is_some()) {
            return Err(LoadError::NotZero { id });
        }
        let at = to_u32(self.accounts.len());
        self.accounts.push(account);
        // Not touched in this epoch.
        self.touched.push(self.epoch.wrapping_sub(1));
        self.account_at.insert(hash, at);
        self.sealed_accounts = self.accounts.len();
        Ok(())
    }

    /// Adds a transfer as stored; `state` is its state if it is pending.
    /// An open pending joins the book's open pendings.
    pub fn load_transfer(
        &mut self,
        record: Record,
        state: Option<PendingState>,
    ) -> Result<(), LoadError> {
        assert!(
            self.records.len() == self.sealed_records && self.dirty.is_empty(),
            "a book is loaded before it is used"
        );
        let id = record.transfer.id.clone();
        let hash = hash_id(id.as_str());
        if self.find_record(hash, &id).is_some() {
            return Err(LoadError::DuplicateTransfer { id });
        }
        if let Err(why) = static_check(&record.transfer) {
            return Err(LoadError::InvalidTransfer { id, why });
        }
        let expires = record.transfer.kind.expires_at_ms();
        if expires.is_some() != state.is_some() {
            return Err(LoadError::StateMismatch { id });
        }
        if let (Some(expires_at_ms), Some(PendingState::Open)) = (expires, state) {
            self.open.insert((expires_at_ms, id.clone()));
        }
        self.record_at.insert(hash, to_u32(self.records.len()));
        self.records.push(record);
        self.states.push(state);
        self.sealed_records = self.records.len();
        Ok(())
    }

    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.find_account(hash_id(id.as_str()), id)
            .map(|at| &self.accounts[at as usize])
    }

    /// Every account, in the order loaded or created.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    pub fn transfer(&self, id: &TransferId) -> Option<&Record> {
        self.find_record(hash_id(id.as_str()), id)
            .map(|at| &self.records[at as usize])
    }

    /// The index of the account with id `id` (whose hash is `hash`).
    fn find_account(&self, hash: u64, id: &AccountId) -> Option<u32> {
        self.account_at
            .find(hash, |at| self.accounts[at as usize].id == *id)
    }

    /// The index of the record with id `id` (whose hash is `hash`).
    fn find_record(&self, hash: u64, id: &TransferId) -> Option<u32> {
        self.record_at
            .find(hash, |at| self.records[at as usize].transfer.id == *id)
    }

    /// Every record, loaded then created, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The state of a pending transfer the book holds.
    pub fn pending_state(&self, id: &TransferId) -> Option<PendingState> {
        self.find_record(hash_id(id.as_str()), id)
            .and_then(|at| self.states[at as usize])
    }

    /// The open pendings, by expiry then id.
    pub fn open_pendings(&self) -> impl Iterator<Item = (i64, &TransferId)> + '_ {
        self.open.iter().map(|(at, id)| (*at, id))
    }

    /// Creates accounts: one result per account, in order. A batch over
    /// [`BATCH_ACCOUNTS_MAX`] is refused whole.
    pub fn create_accounts(&mut self, batch: &[NewAccount], now_ms: i64) -> Vec<AccountResult> {
        if batch.len() > BATCH_ACCOUNTS_MAX {
            let refused = AccountError::BatchTooLarge {
                max: BATCH_ACCOUNTS_MAX,
            };
            return vec![Err(refused); batch.len()];
        }
        let results = batch
            .iter()
            .map(|new| self.create_account(new, now_ms))
            .collect();
        self.assert_postconditions();
        results
    }

    fn create_account(&mut self, new: &NewAccount, now_ms: i64) -> AccountResult {
        if let Some(at) = self.account_index(&new.id) {
            let old = self.accounts[at as usize].as_new();
            let field = if old.asset != new.asset {
                Some("asset")
            } else if old.side != new.side {
                Some("side")
            } else if old.floor_micro != new.floor_micro {
                Some("floor_micro")
            } else if old.must_stay_zero != new.must_stay_zero {
                Some("must_stay_zero")
            } else {
                None
            };
            return match field {
                None => Ok(Applied::Exists),
                Some(field) => Err(AccountError::ExistsWithDifferentFields { field }),
            };
        }
        if let Some(floor_micro) = new.floor_micro {
            if new.must_stay_zero {
                return Err(AccountError::FloorOnZeroAccount);
            }
            if !floor_in_range(floor_micro) {
                return Err(AccountError::FloorOutOfRange { floor_micro });
            }
            if floor_micro > 0 {
                return Err(AccountError::FloorAboveBalance { floor_micro });
            }
        }
        let at = to_u32(self.accounts.len());
        self.accounts.push(Account::open(new, now_ms));
        // Touched from zero, so that the postconditions count what its
        // first transfers move.
        self.touched.push(self.epoch);
        self.dirty.push((at, Totals::ZERO));
        self.account_at.insert(hash_id(new.id.as_str()), at);
        Ok(Applied::Created)
    }

    /// Changes an account's floor (credit granted: lower; withdrawn:
    /// higher, but never above what the account has available now).
    pub fn set_floor(
        &mut self,
        id: &AccountId,
        floor_micro: Option<i64>,
        now_ms: i64,
    ) -> Result<FloorChange, FloorError> {
        let Some(at) = self.account_index(id) else {
            return Err(FloorError::AccountNotFound { id: id.clone() });
        };
        let account = &mut self.accounts[at as usize];
        if let Some(floor_micro) = floor_micro {
            if account.must_stay_zero {
                return Err(FloorError::FloorOnZeroAccount);
            }
            if !floor_in_range(floor_micro) {
                return Err(FloorError::FloorOutOfRange { floor_micro });
            }
            let balance_micro = account.available_micro();
            if balance_micro < floor_micro {
                return Err(FloorError::FloorAboveBalance {
                    balance_micro,
                    floor_micro,
                });
            }
        }
        let change = FloorChange {
            account: id.clone(),
            before_micro: account.floor_micro,
            after_micro: floor_micro,
            at_ms: now_ms,
        };
        account.floor_micro = floor_micro;
        assert!(account.within_floor(), "a floor is set only where it holds");
        self.floors.push(change.clone());
        Ok(change)
    }

    /// Applies a batch: one result per transfer, in order. Chains of
    /// linked transfers apply whole or not at all. A batch over
    /// [`BATCH_TRANSFERS_MAX`] is refused whole.
    pub fn create_transfers(&mut self, batch: &[Transfer], now_ms: i64) -> Vec<CreateResult> {
        if batch.len() > BATCH_TRANSFERS_MAX {
            let refused = TransferError::BatchTooLarge {
                max: BATCH_TRANSFERS_MAX,
            };
            return vec![Err(refused); batch.len()];
        }
        let created_before = self.records.len();
        self.warm(batch);
        let mut results: Vec<CreateResult> = Vec::with_capacity(batch.len());
        let mut start = 0;
        while start < batch.len() {
            let mut end = start;
            while end < batch.len() && batch[end].linked {
                end += 1;
            }
            if end == batch.len() {
                // The batch ends inside a chain: none of it applies.
                let last = batch.len() - 1;
                results.extend(
                    (start..last).map(|_| Err(TransferError::LinkedChainFailed { because: last })),
                );
                results.push(Err(TransferError::LinkedChainOpen));
                break;
            }
            self.apply_chain(&batch[start..=end], start, now_ms, &mut results);
            start = end + 1;
        }
        assert_eq!(results.len(), batch.len(), "one result per transfer");
        let created = results
            .iter()
            .filter(|r| matches!(r, Ok(Applied::Created)))
            .count();
        assert_eq!(
            self.records.len(),
            created_before + created,
            "a record per created transfer, appended"
        );
        self.assert_postconditions();
        results
    }

    /// Hashes the ids of a batch once ([`Book::hashes`]), then looks up,
    /// ahead of applying them, the slots of its ids, the records of the
    /// pendings it resolves, and its accounts, keeping nothing.
    ///
    /// *Rationale.* Applying a transfer depends on the one before, so the
    /// processor would wait for each lookup in a table of millions in turn
    /// (a cache and TLB miss each). These lookups depend on nothing: in a
    /// tight loop many misses are in flight at once, and applying then
    /// finds what it reads (a few hundred KiB for a batch) in cache.
    fn warm(&mut self, batch: &[Transfer]) {
        let mut hashes = std::mem::take(&mut self.hashes);
        hashes.clear();
        hashes.extend(batch.iter().map(|t| {
            let pending = t.kind.pending().map_or(0, |p| hash_id(p.as_str()));
            [hash_id(t.id.as_str()), pending]
        }));
        let mut seen = 0u64;
        for [id, _] in &hashes {
            seen ^= self.record_at.touch(*id);
        }
        for (t, [_, pending]) in batch.iter().zip(&hashes) {
            if let Some(p) = t.kind.pending() {
                if let Some(at) = self.find_record(*pending, p) {
                    let record = &self.records[at as usize];
                    seen ^= record.transfer.amount_micro as u64;
                    seen ^= u64::from(self.states[at as usize].is_some());
                }
            }
        }
        for t in batch {
            for account in [&t.debit, &t.credit] {
                if let Some(at) = self.find_account(hash_id(account.as_str()), account) {
                    seen ^= self.accounts[at as usize].totals.debits_posted_micro as u64;
                }
            }
        }
        std::hint::black_box(seen);
        self.hashes = hashes;
    }

    /// Expires up to `limit` (at most [`EXPIRE_BATCH_MAX`]) of the book's
    /// open pendings whose expiry is at or before `now_ms`, soonest first,
    /// by their `expire:{id}` transfers. Returns the expiries created.
    pub fn expire(&mut self, now_ms: i64, limit: usize) -> Vec<TransferId> {
        let due: Vec<(i64, TransferId)> = self
            .open
            .iter()
            .take_while(|(expires_at_ms, _)| *expires_at_ms <= now_ms)
            .take(limit.min(EXPIRE_BATCH_MAX))
            .cloned()
            .collect();
        let mut expired = Vec::with_capacity(due.len());
        for (_, pending) in due {
            let pending_hash = hash_id(pending.as_str());
            let of = &self.records[self.record_index(&pending).expect("open") as usize];
            let expiry = Transfer {
                id: TransferId::expiry_of(&pending),
                debit: of.transfer.debit.clone(),
                credit: of.transfer.credit.clone(),
                amount_micro: of.transfer.amount_micro,
                asset: of.transfer.asset,
                code: codes::EXPIRY,
                reference: of.transfer.reference.clone(),
                kind: Kind::Expire { pending },
                linked: false,
            };
            let hashes = [hash_id(expiry.id.as_str()), pending_hash];
            let applied = self.apply_one(&expiry, hashes, now_ms, Origin::Ledger);
            assert_eq!(applied, Ok(Applied::Created), "an open pending expires");
            self.undo.clear();
            self.chain_zero.clear();
            expired.push(expiry.id);
        }
        self.assert_postconditions();
        expired
    }

    /// What changed since the book was loaded or last sealed.
    pub fn changes(&self) -> Changes<'_> {
        let mut accounts: Vec<&Account> = self
            .dirty
            .iter()
            .filter(|(at, _)| (*at as usize) < self.sealed_accounts)
            .map(|(at, before)| (&self.accounts[*at as usize], before))
            .filter(|(account, before)| account.totals != **before)
            .map(|(account, _)| account)
            .collect();
        accounts.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let records = &self.records[self.sealed_records..];
        let opened = records
            .iter()
            .zip(&self.states[self.sealed_records..])
            .filter(|(_, state)| **state == Some(PendingState::Open))
            .map(|(record, _)| {
                let expires_at_ms = record.transfer.kind.expires_at_ms().expect("pending");
                (&record.transfer.id, expires_at_ms)
            })
            .collect();
        let resolved = self
            .resolved
            .iter()
            .filter(|at| (**at as usize) < self.sealed_records)
            .map(|at| &self.records[*at as usize].transfer.id)
            .collect();
        Changes {
            records,
            created_accounts: self.accounts[self.sealed_accounts..].iter().collect(),
            accounts,
            opened,
            resolved,
            floors: &self.floors,
        }
    }

    /// Starts a new batch: what is there now counts as loaded. Returns the
    /// accounts touched since the last seal with their totals then (for a
    /// ledger's running sums).
    pub fn seal(&mut self) -> Vec<(u32, Totals)> {
        self.sealed_records = self.records.len();
        self.sealed_accounts = self.accounts.len();
        self.epoch += 1;
        self.resolved.clear();
        self.floors.clear();
        std::mem::take(&mut self.dirty)
    }

    /// The account at index `at` (as [`Book::seal`] names them).
    pub fn account_at(&self, at: u32) -> &Account {
        &self.accounts[at as usize]
    }

    /// Applies one chain, pushing one result per transfer.
    fn apply_chain(
        &mut self,
        chain: &[Transfer],
        first: usize,
        now_ms: i64,
        results: &mut Vec<CreateResult>,
    ) {
        debug_assert!(self.undo.is_empty() && self.chain_zero.is_empty());
        let mut failed: Option<(usize, TransferError)> = None;
        // Results go straight in (no vector per chain); a failed chain's
        // are replaced below.
        let results_before = results.len();
        for (i, transfer) in chain.iter().enumerate() {
            let hashes = self.hashes[first + i];
            match self.apply_one(transfer, hashes, now_ms, Origin::Caller) {
                Ok(done) => results.push(Ok(done)),
                Err(error) => {
                    failed = Some((first + i, error));
                    break;
                }
            }
        }
        if failed.is_none() {
            let off_zero = self
                .chain_zero
                .iter()
                .find(|at| !self.accounts[**at as usize].is_zero());
            if let Some(at) = off_zero {
                let account = self.accounts[*at as usize].id.clone();
                failed = Some((
                    first + chain.len() - 1,
                    TransferError::MustStayZero { account },
                ));
            }
        }
        match failed {
            None => {}
            Some((because, error)) => {
                self.roll_back();
                results.truncate(results_before);
                for i in first..first + chain.len() {
                    if i == because {
                        results.push(Err(error.clone()));
                    } else {
                        results.push(Err(TransferError::LinkedChainFailed { because }));
                    }
                }
            }
        }
        self.undo.clear();
        self.chain_zero.clear();
    }

    /// Undoes the chain being applied, newest first.
    fn roll_back(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Totals { account, totals } => {
                    self.accounts[account as usize].totals = totals;
                }
                Undo::Created => {
                    let record = self.records.pop().expect("created");
                    let state = self.states.pop().expect("a state per record");
                    let at = to_u32(self.records.len());
                    self.record_at
                        .remove(hash_id(record.transfer.id.as_str()), at);
                    if let (Some(PendingState::Open), Some(expires_at_ms)) =
                        (state, record.transfer.kind.expires_at_ms())
                    {
                        let removed = self.open.remove(&(expires_at_ms, record.transfer.id));
                        assert!(removed, "an open pending is in the open set");
                    }
                }
                Undo::Resolved {
                    pending,
                    expires_at_ms,
                } => {
                    self.states[pending as usize] = Some(PendingState::Open);
                    let id = self.records[pending as usize].transfer.id.clone();
                    self.open.insert((expires_at_ms, id));
                    let last = self.resolved.pop();
                    assert_eq!(last, Some(pending), "resolutions undone in order");
                }
            }
        }
    }

    fn account_index(&self, id: &AccountId) -> Option<u32> {
        let found = self.find_account(hash_id(id.as_str()), id);
        if found.is_none() {
            if let Some(coverage) = &self.coverage {
                assert!(
                    coverage.needs.accounts.binary_search(id).is_ok(),
                    "account {id} looked up in a book not loaded for it"
                );
            }
        }
        found
    }

    fn record_index(&self, id: &TransferId) -> Option<u32> {
        self.record_index_hashed(hash_id(id.as_str()), id)
    }

    /// [`Book::record_index`], the hash of `id` given.
    fn record_index_hashed(&self, hash: u64, id: &TransferId) -> Option<u32> {
        let found = self.find_record(hash, id);
        if found.is_none() && !id.is_reserved() {
            if let Some(coverage) = &self.coverage {
                assert!(
                    coverage.needs.transfers.binary_search(id).is_ok(),
                    "transfer {id} looked up in a book not loaded for it"
                );
            }
        }
        found
    }

    /// Checks `t` and applies it, or changes nothing and says why.
    fn apply_one(
        &mut self,
        t: &Transfer,
        [hash, pending_hash]: [u64; 2],
        now_ms: i64,
        origin: Origin,
    ) -> Result<Applied, TransferError> {
        if let Some(at) = self.record_index_hashed(hash, &t.id) {
            return match self.records[at as usize].transfer.differs(t) {
                None => Ok(Applied::Exists),
                Some(field) => Err(TransferError::ExistsWithDifferentFields { field }),
            };
        }
        if origin == Origin::Caller {
            if t.id.is_reserved() {
                return Err(TransferError::ReservedId);
            }
            if matches!(t.kind, Kind::Expire { .. }) {
                return Err(TransferError::ExpireByLedgerOnly);
            }
        }
        static_check(t)?;
        if let Kind::Pending { expires_at_ms } = t.kind {
            if expires_at_ms <= now_ms {
                return Err(TransferError::ExpiresNotAfterNow {
                    expires_at_ms,
                    now_ms,
                });
            }
            if i128::from(expires_at_ms) - i128::from(now_ms) > i128::from(PENDING_TIMEOUT_MS_MAX) {
                return Err(TransferError::ExpiresTooLate { expires_at_ms });
            }
        }
        let debit = self
            .account_index(&t.debit)
            .ok_or_else(|| TransferError::AccountNotFound {
                id: t.debit.clone(),
            })?;
        let credit =
            self.account_index(&t.credit)
                .ok_or_else(|| TransferError::AccountNotFound {
                    id: t.credit.clone(),
                })?;
        let (d, c) = (
            &self.accounts[debit as usize],
            &self.accounts[credit as usize],
        );
        for account in [d, c] {
            if account.asset != t.asset {
                return Err(TransferError::AssetMismatch {
                    account: account.id.clone(),
                });
            }
        }
        if matches!(t.kind, Kind::Pending { .. }) {
            // A pending could expire alone and leave the account off zero.
            if let Some(zero) = [d, c].into_iter().find(|a| a.must_stay_zero) {
                return Err(TransferError::MustStayZero {
                    account: zero.id.clone(),
                });
            }
        }
        let resolves = match t.kind.pending() {
            None => None,
            Some(pending) => Some(self.check_resolution(t, pending, pending_hash, now_ms)?),
        };

        // The new totals: every check that can fail is before the writes.
        let (a, released) = (t.amount_micro, resolves.map_or(0, |(_, amount, _)| amount));
        let (mut td, mut tc) = (d.totals, c.totals);
        match t.kind {
            Kind::Posted => {
                td.debits_posted_micro = add(td.debits_posted_micro, a, &t.debit)?;
                tc.credits_posted_micro = add(tc.credits_posted_micro, a, &t.credit)?;
            }
            Kind::Pending { .. } => {
                td.debits_pending_micro = add(td.debits_pending_micro, a, &t.debit)?;
                tc.credits_pending_micro = add(tc.credits_pending_micro, a, &t.credit)?;
            }
            Kind::Post { .. } => {
                td.debits_pending_micro = release(td.debits_pending_micro, released);
                tc.credits_pending_micro = release(tc.credits_pending_micro, released);
                td.debits_posted_micro = add(td.debits_posted_micro, a, &t.debit)?;
                tc.credits_posted_micro = add(tc.credits_posted_micro, a, &t.credit)?;
            }
            Kind::Void { .. } | Kind::Expire { .. } => {
                td.debits_pending_micro = release(td.debits_pending_micro, released);
                tc.credits_pending_micro = release(tc.credits_pending_micro, released);
            }
        }
        for (account, totals) in [(d, &td), (c, &tc)] {
            let before_micro = account.available_micro();
            let after_micro = account.side.available_micro(totals);
            if let Some(floor_micro) = account.floor_micro {
                if after_micro < before_micro && after_micro < floor_micro {
                    return Err(TransferError::ExceedsFloor {
                        account: account.id.clone(),
                        balance_micro: before_micro,
                        floor_micro,
                        amount_micro: a,
                    });
                }
            }
        }

        // The writes.
        self.set_totals(debit, td);
        self.set_totals(credit, tc);
        let at = to_u32(self.records.len());
        self.record_at.insert(hash, at);
        self.records.push(Record {
            transfer: t.clone(),
            at_ms: now_ms,
        });
        if let Kind::Pending { expires_at_ms } = t.kind {
            self.states.push(Some(PendingState::Open));
            self.open.insert((expires_at_ms, t.id.clone()));
        } else {
            self.states.push(None);
        }
        self.undo.push(Undo::Created);
        if let Some((pending, _, expires_at_ms)) = resolves {
            let state = PendingState::after(t.kind.phase()).expect("a resolution");
            self.states[pending as usize] = Some(state);
            let id = self.records[pending as usize].transfer.id.clone();
            let removed = self.open.remove(&(expires_at_ms, id));
            assert!(removed, "a pending resolved was open");
            self.resolved.push(pending);
            self.undo.push(Undo::Resolved {
                pending,
                expires_at_ms,
            });
        }
        Ok(Applied::Created)
    }

    /// Whether `t` may resolve `pending` now: its index, amount and expiry.
    fn check_resolution(
        &self,
        t: &Transfer,
        pending: &TransferId,
        pending_hash: u64,
        now_ms: i64,
    ) -> Result<(u32, i64, i64), TransferError> {
        let Some(at) = self.record_index_hashed(pending_hash, pending) else {
            return Err(TransferError::PendingNotFound {
                id: pending.clone(),
            });
        };
        let p = &self.records[at as usize].transfer;
        let Some(expires_at_ms) = p.kind.expires_at_ms() else {
            return Err(TransferError::NotPending {
                id: pending.clone(),
            });
        };
        let differs = if p.debit != t.debit {
            Some("debit")
        } else if p.credit != t.credit {
            Some("credit")
        } else if p.asset != t.asset {
            Some("asset")
        } else {
            None
        };
        if let Some(field) = differs {
            return Err(TransferError::PendingDiffers { field });
        }
        let state = self.states[at as usize].expect("a pending has a state");
        match state {
            PendingState::Posted => return Err(TransferError::PendingAlreadyPosted),
            PendingState::Voided => return Err(TransferError::PendingAlreadyVoided),
            PendingState::Open | PendingState::Expired => {}
        }
        let is_expiry = matches!(t.kind, Kind::Expire { .. });
        if is_expiry {
            assert!(
                state == PendingState::Open && now_ms >= expires_at_ms,
                "the ledger expires only open pendings that are due"
            );
        } else {
            // Past its expiry a pending is expired whether or not its
            // expiry is recorded yet: the answer does not depend on when
            // `expire` last ran.
            if now_ms >= expires_at_ms {
                return Err(TransferError::PendingHasExpired { expires_at_ms });
            }
            if state == PendingState::Expired {
                // Only if the clock went back since.
                return Err(TransferError::PendingAlreadyExpired);
            }
        }
        let pending_micro = p.amount_micro;
        match t.kind {
            Kind::Post { .. } if t.amount_micro > pending_micro => {
                Err(TransferError::PostExceedsPending {
                    amount_micro: t.amount_micro,
                    pending_micro,
                })
            }
            Kind::Void { .. } | Kind::Expire { .. } if t.amount_micro != pending_micro => {
                Err(TransferError::VoidAmountDiffers {
                    amount_micro: t.amount_micro,
                    pending_micro,
                })
            }
            _ => Ok((at, pending_micro, expires_at_ms)),
        }
    }

    fn set_totals(&mut self, at: u32, totals: Totals) {
        let i = at as usize;
        if self.touched[i] != self.epoch {
            self.touched[i] = self.epoch;
            self.dirty.push((at, self.accounts[i].totals));
        }
        self.undo.push(Undo::Totals {
            account: at,
            totals: self.accounts[i].totals,
        });
        if self.accounts[i].must_stay_zero {
            self.chain_zero.push(at);
        }
        self.accounts[i].totals = totals;
    }

    /// The postconditions of every call; see the module doc.
    fn assert_postconditions(&self) {
        let mut sums = [0i128; 4];
        for (at, before) in &self.dirty {
            let account = &self.accounts[*at as usize];
            let (now, before) = (&account.totals, before);
            sums[0] += i128::from(now.debits_posted_micro - before.debits_posted_micro);
            sums[1] += i128::from(now.credits_posted_micro - before.credits_posted_micro);
            sums[2] += i128::from(now.debits_pending_micro - before.debits_pending_micro);
            sums[3] += i128::from(now.credits_pending_micro - before.credits_pending_micro);
            assert!(now.in_range(), "account {} within its limits", account.id);
            assert!(
                account.within_floor(),
                "account {} within its floor",
                account.id
            );
            assert!(
                !account.must_stay_zero || account.is_zero(),
                "must-stay-zero account {} is zero",
                account.id
            );
        }
        assert_eq!(sums[0], sums[1], "posted debits and credits moved alike");
        assert_eq!(sums[2], sums[3], "pending debits and credits moved alike");
        assert_eq!(self.records.len(), self.states.len(), "a state per record");
        assert!(self.undo.is_empty(), "no chain left half applied");
    }
}

/// `total + amount`, or `Overflow` past [`TOTAL_MICRO_MAX`].
fn add(total: i64, amount: i64, account: &AccountId) -> Result<i64, TransferError> {
    match total.checked_add(amount) {
        Some(sum) if sum <= TOTAL_MICRO_MAX => Ok(sum),
        _ => Err(TransferError::Overflow {
            account: account.clone(),
        }),
    }
}

/// `total - released`: a pending's amount is in its accounts' pending
/// totals while it is open.
fn release(total: i64, released: i64) -> i64 {
    let left = total - released;
    assert!(left >= 0, "an open pending's amount is in its totals");
    left
}

/// The checks that need no state: amount, code, reference, accounts, and a
/// pending's id length.
pub(crate) fn static_check(t: &Transfer) -> Result<(), TransferError> {
    if t.amount_micro <= 0 {
        return Err(TransferError::AmountNotPositive);
    }
    if t.amount_micro > AMOUNT_MICRO_MAX {
        return Err(TransferError::AmountTooLarge);
    }
    if t.code == 0 {
        return Err(TransferError::CodeZero);
    }
    if t.reference.len() > REFERENCE_LEN_MAX || t.reference.chars().any(char::is_control) {
        return Err(TransferError::ReferenceInvalid);
    }
    if t.debit == t.credit {
        return Err(TransferError::SameAccount);
    }
    if matches!(t.kind, Kind::Pending { .. }) && t.id.as_str().len() > PENDING_ID_LEN_MAX {
        return Err(TransferError::PendingIdTooLong {
            max: PENDING_ID_LEN_MAX,
        });
    }
    Ok(())
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a book holds fewer than 2^32 accounts and transfers")
}
