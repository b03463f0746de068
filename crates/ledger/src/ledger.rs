//! The whole ledger in memory: a complete [`Book`] (every account, the
//! whole history) and running sums over every account. What the simulator,
//! the property tests and the benchmark use; the store runs the same
//! [`Book`] over what it loads.

use crate::account::{Account, FloorChange, FloorError, NewAccount, Totals};
use crate::book::{AccountResult, Book};
use crate::id::{AccountId, TransferId};
use crate::replay::{CheckError, Replay};
use crate::transfer::{CreateResult, PendingState, Record, Transfer};

/// Every account and every transfer, in memory.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    book: Book,
    /// Over every account: debits posted, credits posted, debits pending,
    /// credits pending.
    sums_micro: [i128; 4],
    floor_changes: Vec<FloorChange>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger {
            book: Book::complete(),
            ..Ledger::default()
        }
    }

    /// An empty ledger with room for `accounts` accounts and `transfers`
    /// transfers before its tables grow.
    pub fn with_capacity(accounts: usize, transfers: usize) -> Ledger {
        Ledger {
            book: Book::with_capacity(accounts, transfers),
            ..Ledger::default()
        }
    }

    /// See [`Book::create_accounts`].
    pub fn create_accounts(&mut self, batch: &[NewAccount], now_ms: i64) -> Vec<AccountResult> {
        let results = self.book.create_accounts(batch, now_ms);
        self.seal();
        results
    }

    /// See [`Book::create_transfers`].
    pub fn create_transfers(&mut self, batch: &[Transfer], now_ms: i64) -> Vec<CreateResult> {
        let results = self.book.create_transfers(batch, now_ms);
        self.seal();
        results
    }

    /// See [`Book::expire`].
    pub fn expire(&mut self, now_ms: i64, limit: usize) -> Vec<TransferId> {
        let expired = self.book.expire(now_ms, limit);
        self.seal();
        expired
    }

    /// See [`Book::set_floor`]. Every change is kept
    /// ([`Ledger::floor_changes`]).
    pub fn set_floor(
        &mut self,
        id: &AccountId,
        floor_micro: Option<i64>,
        now_ms: i64,
    ) -> Result<FloorChange, FloorError> {
        let change = self.book.set_floor(id, floor_micro, now_ms);
        if let Ok(change) = &change {
            self.floor_changes.push(change.clone());
        }
        self.seal();
        change
    }

    /// Adds what the accounts touched moved to the running sums, and holds
    /// debits equal to credits over every account.
    fn seal(&mut self) {
        for (at, before) in self.book.seal() {
            let now = self.book.account_at(at).totals;
            let delta = |now: i64, before: i64| i128::from(now) - i128::from(before);
            self.sums_micro[0] += delta(now.debits_posted_micro, before.debits_posted_micro);
            self.sums_micro[1] += delta(now.credits_posted_micro, before.credits_posted_micro);
            self.sums_micro[2] += delta(now.debits_pending_micro, before.debits_pending_micro);
            self.sums_micro[3] += delta(now.credits_pending_micro, before.credits_pending_micro);
        }
        assert_eq!(
            self.sums_micro[0], self.sums_micro[1],
            "posted debits equal posted credits over every account"
        );
        assert_eq!(
            self.sums_micro[2], self.sums_micro[3],
            "pending debits equal pending credits over every account"
        );
    }

    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.book.account(id)
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> &[Account] {
        self.book.accounts()
    }

    pub fn transfer(&self, id: &TransferId) -> Option<&Record> {
        self.book.transfer(id)
    }

    /// Every transfer, in the order created.
    pub fn history(&self) -> &[Record] {
        self.book.records()
    }

    pub fn pending_state(&self, id: &TransferId) -> Option<PendingState> {
        self.book.pending_state(id)
    }

    /// The open pendings, soonest expiry first.
    pub fn open_pendings(&self) -> impl Iterator<Item = (i64, &TransferId)> + '_ {
        self.book.open_pendings()
    }

    pub fn floor_changes(&self) -> &[FloorChange] {
        &self.floor_changes
    }

    /// The sums over every account: (posted, pending), debits and credits
    /// alike (they are equal).
    pub fn sums_micro(&self) -> (i128, i128) {
        (self.sums_micro[0], self.sums_micro[2])
    }

    /// Recomputes every balance and pending state from the history
    /// ([`Replay`]) and compares them with the running ones.
    pub fn check(&self) -> Result<(), CheckError> {
        let mut replay = Replay::new(self.accounts().iter().cloned())?;
        for record in self.history() {
            replay.apply(record)?;
        }
        let replayed = replay.finish()?;
        replayed.compare(self.accounts())?;
        replayed.compare_open(self.open_pendings())?;
        for record in self.history() {
            let id = &record.transfer.id;
            let (stored, replayed) = (self.pending_state(id), replayed.states.get(id).copied());
            if stored != replayed {
                return Err(CheckError::StateDiffers {
                    id: id.clone(),
                    stored,
                    replayed,
                });
            }
        }
        Ok(())
    }

    /// The ledger that `history` leaves over `accounts` (their totals are
    /// not read: they are recomputed), checked as [`Replay`] checks.
    pub fn replay(
        accounts: impl IntoIterator<Item = Account>,
        history: &[Record],
    ) -> Result<Ledger, CheckError> {
        let mut replay = Replay::new(accounts)?;
        for record in history {
            replay.apply(record)?;
        }
        let replayed = replay.finish()?;
        let mut ledger = Ledger::new();
        for account in replayed.accounts {
            let t: Totals = account.totals;
            ledger.sums_micro[0] += i128::from(t.debits_posted_micro);
            ledger.sums_micro[1] += i128::from(t.credits_posted_micro);
            ledger.sums_micro[2] += i128::from(t.debits_pending_micro);
            ledger.sums_micro[3] += i128::from(t.credits_pending_micro);
            ledger
                .book
                .load_account(account)
                .map_err(|why| CheckError::AccountsDiffer {
                    why: why.to_string(),
                })?;
        }
        for record in history {
            let state = replayed.states.get(&record.transfer.id).copied();
            let id = record.transfer.id.clone();
            ledger
                .book
                .load_transfer(record.clone(), state)
                .map_err(|why| CheckError::Transfer {
                    id,
                    position: 0,
                    why: why.to_string(),
                })?;
        }
        ledger.seal();
        Ok(ledger)
    }
}
