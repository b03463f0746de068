//! Balances recomputed from the history alone, to check the stored ones.
//!
//! [`Replay`] folds the records of a history, in order, into fresh totals
//! and pending states. It is written from the rules of the data model, not
//! from [`Book`](crate::Book): each record's effect (posted, reserved,
//! released) and its shape (ids unique, accounts that exist with its
//! asset, a resolution of a pending that is open, names its accounts,
//! covers its amount and happened before its expiry, or at or after it for
//! an expiry). It does not re-judge floors along the way (a floor may have
//! been changed since), only at the end, against the current ones; nor
//! must-stay-zero accounts, whose chains concurrent writers may interleave
//! in a stored history: only at the end. [`Replayed::compare`] then holds
//! the stored totals to the replayed ones.
//!
//! The ledger's [`check`](crate::Ledger::check) and the store's
//! `ledger_check` both run it.

use std::collections::{BTreeMap, BTreeSet};

use crate::account::{Account, Asset, Totals, TOTAL_MICRO_MAX};
use crate::book::{static_check, IdMap};
use crate::id::{AccountId, TransferId};
use crate::transfer::{Kind, PendingState, Record};

/// Why a history does not add up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("account {id} is listed twice")]
    DuplicateAccount { id: AccountId },
    #[error("transfer {id} (number {position} in history order): {why}")]
    Transfer {
        id: TransferId,
        position: u64,
        why: String,
    },
    #[error("{what} debits ({debits_micro}) and credits ({credits_micro}) differ")]
    Unbalanced {
        what: &'static str,
        debits_micro: i128,
        credits_micro: i128,
    },
    #[error("account {id} is below its floor: {available_micro} available, floor {floor_micro}")]
    BelowFloor {
        id: AccountId,
        available_micro: i64,
        floor_micro: i64,
    },
    #[error("must-stay-zero account {id} is not zero")]
    NotZero { id: AccountId },
    #[error("account {id}: stored {stored}, replayed {replayed}")]
    TotalsDiffer {
        id: AccountId,
        stored: Totals,
        replayed: Totals,
    },
    #[error("stored accounts differ from those replayed: {why}")]
    AccountsDiffer { why: String },
    #[error("stored open pendings differ from those replayed: {why}")]
    OpenDiffers { why: String },
    #[error("pending {id} is {stored:?} as stored, {replayed:?} replayed")]
    StateDiffers {
        id: TransferId,
        stored: Option<PendingState>,
        replayed: Option<PendingState>,
    },
}

/// A pending transfer as the replay tracks it.
#[derive(Clone, Debug)]
struct Pend {
    debit: u32,
    credit: u32,
    amount_micro: i64,
    asset: Asset,
    expires_at_ms: i64,
    state: PendingState,
}

/// A history being folded; see the module doc.
#[derive(Debug)]
pub struct Replay {
    accounts: Vec<Account>,
    account_at: IdMap<AccountId, u32>,
    /// Every transfer id seen; pendings with their state.
    seen: IdMap<TransferId, Option<Pend>>,
    transfers: u64,
}

/// What a history adds up to.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// The accounts given, in that order, with the replayed totals.
    pub accounts: Vec<Account>,
    /// Every pending transfer's state.
    pub states: BTreeMap<TransferId, PendingState>,
    /// The open pendings, by (expiry, id).
    pub open: BTreeSet<(i64, TransferId)>,
    /// Records folded.
    pub transfers: u64,
}

impl Replay {
    /// A replay over `accounts`; their totals are not read (they are what
    /// the replay computes).
    pub fn new(accounts: impl IntoIterator<Item = Account>) -> Result<Replay, CheckError> {
        let mut replay = Replay {
            accounts: Vec::new(),
            account_at: IdMap::default(),
            seen: IdMap::default(),
            transfers: 0,
        };
        for mut account in accounts {
            account.totals = Totals::ZERO;
            let at = u32::try_from(replay.accounts.len()).expect("fewer than 2^32 accounts");
            if replay.account_at.insert(account.id.clone(), at).is_some() {
                return Err(CheckError::DuplicateAccount { id: account.id });
            }
            replay.accounts.push(account);
        }
        Ok(replay)
    }

    /// Folds the next record of the history.
    pub fn apply(&mut self, record: &Record) -> Result<(), CheckError> {
        let position = self.transfers;
        let t = &record.transfer;
        let wrong = |why: String| CheckError::Transfer {
            id: t.id.clone(),
            position,
            why,
        };
        if self.seen.contains_key(&t.id) {
            return Err(wrong("its id is taken by an earlier transfer".into()));
        }
        static_check(t).map_err(|why| wrong(why.to_string()))?;
        if t.id.is_reserved() != matches!(t.kind, Kind::Expire { .. }) {
            return Err(wrong(
                "only the ledger's expiries use the reserved prefix".into(),
            ));
        }
        let index = |id: &AccountId| match self.account_at.get(id) {
            None => Err(wrong(format!("no account {id}"))),
            Some(&at) if self.accounts[at as usize].asset != t.asset => {
                Err(wrong(format!("account {id} holds another asset")))
            }
            Some(&at) => Ok(at),
        };
        let (debit, credit) = (index(&t.debit)?, index(&t.credit)?);
        let a = t.amount_micro;
        let mut pend = None;
        match &t.kind {
            Kind::Posted => {
                self.add(debit, |x| &mut x.debits_posted_micro, a)
                    .map_err(wrong)?;
                self.add(credit, |x| &mut x.credits_posted_micro, a)
                    .map_err(wrong)?;
            }
            Kind::Pending { expires_at_ms } => {
                if record.at_ms >= *expires_at_ms {
                    return Err(wrong("it expires before it was created".into()));
                }
                self.add(debit, |x| &mut x.debits_pending_micro, a)
                    .map_err(wrong)?;
                self.add(credit, |x| &mut x.credits_pending_micro, a)
                    .map_err(wrong)?;
                pend = Some(Pend {
                    debit,
                    credit,
                    amount_micro: a,
                    asset: t.asset,
                    expires_at_ms: *expires_at_ms,
                    state: PendingState::Open,
                });
            }
            Kind::Post { pending } | Kind::Void { pending } | Kind::Expire { pending } => {
                let p = match self.seen.get(pending) {
                    None => return Err(wrong(format!("no earlier transfer {pending}"))),
                    Some(None) => return Err(wrong(format!("{pending} is not pending"))),
                    Some(Some(p)) => p.clone(),
                };
                if (p.debit, p.credit, p.asset) != (debit, credit, t.asset) {
                    return Err(wrong(format!("{pending} names other accounts or asset")));
                }
                if p.state != PendingState::Open {
                    return Err(wrong(format!("{pending} was {:?} before", p.state)));
                }
                let (state, amount_ok, time_ok) = match &t.kind {
                    Kind::Post { .. } => (
                        PendingState::Posted,
                        a <= p.amount_micro,
                        record.at_ms < p.expires_at_ms,
                    ),
                    Kind::Void { .. } => (
                        PendingState::Voided,
                        a == p.amount_micro,
                        record.at_ms < p.expires_at_ms,
                    ),
                    _ => (
                        PendingState::Expired,
                        a == p.amount_micro && t.id == TransferId::expiry_of(pending),
                        record.at_ms >= p.expires_at_ms,
                    ),
                };
                if !amount_ok {
                    return Err(wrong(format!("its amount does not fit {pending}'s")));
                }
                if !time_ok {
                    return Err(wrong(format!(
                        "it is on the wrong side of {pending}'s expiry"
                    )));
                }
                let released = p.amount_micro;
                self.sub(debit, |x| &mut x.debits_pending_micro, released)
                    .map_err(wrong)?;
                self.sub(credit, |x| &mut x.credits_pending_micro, released)
                    .map_err(wrong)?;
                if state == PendingState::Posted {
                    self.add(debit, |x| &mut x.debits_posted_micro, a)
                        .map_err(wrong)?;
                    self.add(credit, |x| &mut x.credits_posted_micro, a)
                        .map_err(wrong)?;
                }
                if let Some(Some(p)) = self.seen.get_mut(pending) {
                    p.state = state;
                }
            }
        }
        self.seen.insert(t.id.clone(), pend);
        self.transfers += 1;
        Ok(())
    }

    fn add(
        &mut self,
        at: u32,
        total: impl Fn(&mut Totals) -> &mut i64,
        amount: i64,
    ) -> Result<(), String> {
        let account = &mut self.accounts[at as usize];
        let total = total(&mut account.totals);
        match total.checked_add(amount) {
            Some(sum) if sum <= TOTAL_MICRO_MAX => {
                *total = sum;
                Ok(())
            }
            _ => Err(format!("a total of {} passes its limit", account.id)),
        }
    }

    fn sub(
        &mut self,
        at: u32,
        total: impl Fn(&mut Totals) -> &mut i64,
        amount: i64,
    ) -> Result<(), String> {
        let account = &mut self.accounts[at as usize];
        let total = total(&mut account.totals);
        if *total < amount {
            return Err(format!("a pending total of {} goes below 0", account.id));
        }
        *total -= amount;
        Ok(())
    }

    /// The end state, checked: balanced, every account within its floor,
    /// every must-stay-zero account zero.
    pub fn finish(self) -> Result<Replayed, CheckError> {
        let mut sums = [0i128; 4];
        for account in &self.accounts {
            let t = &account.totals;
            sums[0] += i128::from(t.debits_posted_micro);
            sums[1] += i128::from(t.credits_posted_micro);
            sums[2] += i128::from(t.debits_pending_micro);
            sums[3] += i128::from(t.credits_pending_micro);
            if let Some(floor_micro) = account.floor_micro {
                if !account.within_floor() {
                    return Err(CheckError::BelowFloor {
                        id: account.id.clone(),
                        available_micro: account.available_micro(),
                        floor_micro,
                    });
                }
            }
            if account.must_stay_zero && !account.is_zero() {
                return Err(CheckError::NotZero {
                    id: account.id.clone(),
                });
            }
        }
        for (what, debits_micro, credits_micro) in
            [("posted", sums[0], sums[1]), ("pending", sums[2], sums[3])]
        {
            if debits_micro != credits_micro {
                return Err(CheckError::Unbalanced {
                    what,
                    debits_micro,
                    credits_micro,
                });
            }
        }
        let mut states = BTreeMap::new();
        let mut open = BTreeSet::new();
        for (id, pend) in self.seen {
            if let Some(p) = pend {
                if p.state == PendingState::Open {
                    open.insert((p.expires_at_ms, id.clone()));
                }
                states.insert(id, p.state);
            }
        }
        Ok(Replayed {
            accounts: self.accounts,
            states,
            open,
            transfers: self.transfers,
        })
    }
}

impl Replayed {
    /// Holds `stored` (the accounts the replay was given, as stored, in the
    /// same order) to the replayed totals.
    pub fn compare(&self, stored: &[Account]) -> Result<(), CheckError> {
        if stored.len() != self.accounts.len() {
            return Err(CheckError::AccountsDiffer {
                why: format!("{} stored, {} replayed", stored.len(), self.accounts.len()),
            });
        }
        for (stored, replayed) in stored.iter().zip(&self.accounts) {
            if stored.id != replayed.id {
                return Err(CheckError::AccountsDiffer {
                    why: format!("{} stored where {} was replayed", stored.id, replayed.id),
                });
            }
            if stored.totals != replayed.totals {
                return Err(CheckError::TotalsDiffer {
                    id: stored.id.clone(),
                    stored: stored.totals,
                    replayed: replayed.totals,
                });
            }
        }
        Ok(())
    }

    /// Holds the stored open pendings, by (expiry, id), to the replayed
    /// ones.
    pub fn compare_open<'a>(
        &self,
        stored: impl IntoIterator<Item = (i64, &'a TransferId)>,
    ) -> Result<(), CheckError> {
        let mut replayed = self.open.iter();
        for (expires_at_ms, id) in stored {
            match replayed.next() {
                Some((at, open)) if *at == expires_at_ms && open == id => {}
                Some((at, open)) => {
                    return Err(CheckError::OpenDiffers {
                        why: format!(
                        "{id} due at {expires_at_ms} stored where {open} due at {at} was replayed"
                    ),
                    })
                }
                None => {
                    return Err(CheckError::OpenDiffers {
                        why: format!("{id} is stored open, and is not"),
                    })
                }
            }
        }
        match replayed.next() {
            Some((_, open)) => Err(CheckError::OpenDiffers {
                why: format!("{open} is open, and not stored so"),
            }),
            None => Ok(()),
        }
    }
}
