//! Accounts: an asset, a normal side, an optional floor, and four running
//! totals.
//!
//! *Normal side.* An account's balance is read on its normal side: a
//! credit-normal account (a tenant's wallet, a provider's earnings, the
//! platform's fees) grows with credits, `credits_posted - debits_posted`; a
//! debit-normal account (the operator's cash, which funds top-ups) grows
//! with debits. Summed over every account, debits equal credits: money is
//! only ever moved.
//!
//! *Floor.* `floor_micro` bounds the balance from below, counting what
//! pending transfers reserve against it: for a credit-normal account
//! `credits_posted - debits_posted - debits_pending >= floor`. A wallet
//! with no credit has floor 0; credit granted by the operator is a negative
//! floor (`-credit_limit`). `None`: no floor (the operator's own accounts).
//! Pending credits are not counted: money on its way in may still be
//! voided, money on its way out may still be posted.
//!
//! *Must stay zero.* An account flagged so (the imbalance account a chain
//! of transfers passes money through, e.g. a charge split into provider
//! earnings and a fee) must be back at zero, posted and pending, at the end
//! of every linked chain that touches it.
//!
//! *Limits.* Every total stays at most [`TOTAL_MICRO_MAX`], so every
//! balance and every difference of totals fits an `i64`; a transfer that
//! would pass it fails with `Overflow` instead.

use std::fmt;

use crate::id::AccountId;

/// The largest running total of an account, micro-yuan: half of `i64`, so
/// that `credits - debits - pending` never overflows (about 4.6 × 10^12
/// yuan).
pub const TOTAL_MICRO_MAX: i64 = i64::MAX / 2;

/// What an account counts. Only yuan for now; every transfer is between
/// two accounts of its own asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Asset {
    /// Chinese yuan, in micro-yuan (10^-6).
    Cny,
}

impl Asset {
    pub const ALL: [Asset; 1] = [Asset::Cny];

    /// The ISO 4217 code.
    pub fn as_str(self) -> &'static str {
        match self {
            Asset::Cny => "CNY",
        }
    }

    pub fn parse(text: &str) -> Option<Asset> {
        Asset::ALL.into_iter().find(|asset| asset.as_str() == text)
    }
}

/// The side on which an account's balance grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Grows with debits: the operator's cash (money held for tenants).
    Debit,
    /// Grows with credits: wallets, earnings, fees.
    Credit,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Debit, Side::Credit];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        Side::ALL.into_iter().find(|side| side.as_str() == text)
    }

    /// The available balance of an account of this side with `totals`:
    /// posted on this side, less pending on the other. Never overflows,
    /// with totals in `0..=TOTAL_MICRO_MAX`.
    pub fn available_micro(self, t: &Totals) -> i64 {
        match self {
            Side::Credit => t.credits_posted_micro - t.debits_posted_micro - t.debits_pending_micro,
            Side::Debit => t.debits_posted_micro - t.credits_posted_micro - t.credits_pending_micro,
        }
    }
}

/// An account's four running totals, micro-yuan, each in
/// `0..=TOTAL_MICRO_MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Totals {
    /// Reserved by open pending transfers that debit the account.
    pub debits_pending_micro: i64,
    pub debits_posted_micro: i64,
    /// Reserved by open pending transfers that credit the account.
    pub credits_pending_micro: i64,
    pub credits_posted_micro: i64,
}

impl Totals {
    pub const ZERO: Totals = Totals {
        debits_pending_micro: 0,
        debits_posted_micro: 0,
        credits_pending_micro: 0,
        credits_posted_micro: 0,
    };

    /// Whether every total is in `0..=TOTAL_MICRO_MAX`.
    pub fn in_range(&self) -> bool {
        [
            self.debits_pending_micro,
            self.debits_posted_micro,
            self.credits_pending_micro,
            self.credits_posted_micro,
        ]
        .iter()
        .all(|total| (0..=TOTAL_MICRO_MAX).contains(total))
    }
}

impl fmt::Display for Totals {
    /// `debits POSTED+PENDING pending, credits POSTED+PENDING pending`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "debits {}+{} pending, credits {}+{} pending",
            self.debits_posted_micro,
            self.debits_pending_micro,
            self.credits_posted_micro,
            self.credits_pending_micro
        )
    }
}

/// An account to create. Its totals start at zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    pub id: AccountId,
    pub asset: Asset,
    pub side: Side,
    /// The lowest balance on the normal side, pending debits counted;
    /// `None`: unbounded. See the module doc.
    pub floor_micro: Option<i64>,
    /// Zero at the end of every chain that touches it; takes no floor.
    pub must_stay_zero: bool,
}

impl NewAccount {
    /// A yuan account with no floor, not flagged.
    pub fn new(id: AccountId, side: Side) -> NewAccount {
        NewAccount {
            id,
            asset: Asset::Cny,
            side,
            floor_micro: None,
            must_stay_zero: false,
        }
    }

    /// With floor `floor_micro`.
    pub fn floor(mut self, floor_micro: i64) -> NewAccount {
        self.floor_micro = Some(floor_micro);
        self
    }

    /// Flagged must-stay-zero.
    pub fn must_stay_zero(mut self) -> NewAccount {
        self.must_stay_zero = true;
        self
    }
}

/// An account and its totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub asset: Asset,
    pub side: Side,
    /// The current floor (changed by `set_floor`).
    pub floor_micro: Option<i64>,
    pub must_stay_zero: bool,
    pub created_at_ms: i64,
    pub totals: Totals,
}

impl Account {
    /// `new`, created at `at_ms`, with zero totals.
    pub fn open(new: &NewAccount, at_ms: i64) -> Account {
        Account {
            id: new.id.clone(),
            asset: new.asset,
            side: new.side,
            floor_micro: new.floor_micro,
            must_stay_zero: new.must_stay_zero,
            created_at_ms: at_ms,
            totals: Totals::ZERO,
        }
    }

    /// The posted balance on the normal side.
    pub fn balance_micro(&self) -> i64 {
        let t = &self.totals;
        match self.side {
            Side::Credit => t.credits_posted_micro - t.debits_posted_micro,
            Side::Debit => t.debits_posted_micro - t.credits_posted_micro,
        }
    }

    /// The balance the floor is checked against: posted, less what open
    /// pending transfers reserve on the side that lowers it.
    pub fn available_micro(&self) -> i64 {
        self.side.available_micro(&self.totals)
    }

    /// Whether the account is at or above its floor.
    pub fn within_floor(&self) -> bool {
        self.floor_micro
            .is_none_or(|floor| self.available_micro() >= floor)
    }

    /// Whether the totals net to zero, posted and pending.
    pub fn is_zero(&self) -> bool {
        let t = &self.totals;
        t.debits_posted_micro == t.credits_posted_micro
            && t.debits_pending_micro == t.credits_pending_micro
    }

    /// The fields a creation sets, for comparing a resend.
    pub fn as_new(&self) -> NewAccount {
        NewAccount {
            id: self.id.clone(),
            asset: self.asset,
            side: self.side,
            floor_micro: self.floor_micro,
            must_stay_zero: self.must_stay_zero,
        }
    }
}

/// Why an account was not created.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The id is taken by an account that differs in `field` (the floor
    /// compared is the current one).
    #[error("an account with this id exists with a different {field}")]
    ExistsWithDifferentFields { field: &'static str },
    #[error("a floor of {floor_micro} is above the new account's balance of 0")]
    FloorAboveBalance { floor_micro: i64 },
    #[error("a floor is at most {TOTAL_MICRO_MAX} either side of zero, not {floor_micro}")]
    FloorOutOfRange { floor_micro: i64 },
    #[error("a must-stay-zero account takes no floor")]
    FloorOnZeroAccount,
    #[error("a batch holds at most {max} accounts")]
    BatchTooLarge { max: usize },
}

/// A change of an account's floor (credit granted or withdrawn by the
/// operator): not a transfer, since no money moves, but recorded as well
/// (the store keeps every change, append-only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloorChange {
    pub account: AccountId,
    pub before_micro: Option<i64>,
    pub after_micro: Option<i64>,
    pub at_ms: i64,
}

/// Why a floor was not changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FloorError {
    #[error("no account {id}")]
    AccountNotFound { id: AccountId },
    #[error("a must-stay-zero account takes no floor")]
    FloorOnZeroAccount,
    #[error("a floor is at most {TOTAL_MICRO_MAX} either side of zero, not {floor_micro}")]
    FloorOutOfRange { floor_micro: i64 },
    /// Raising a floor above what the account holds now would put it
    /// below its floor at once: withdraw credit only down to what is used.
    #[error("a floor of {floor_micro} is above the available balance of {balance_micro}")]
    FloorAboveBalance {
        balance_micro: i64,
        floor_micro: i64,
    },
}

/// Whether `floor_micro` is within the bounds every floor keeps.
pub(crate) fn floor_in_range(floor_micro: i64) -> bool {
    (-TOTAL_MICRO_MAX..=TOTAL_MICRO_MAX).contains(&floor_micro)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(side: Side, totals: Totals) -> Account {
        Account {
            id: AccountId::new("a").unwrap(),
            asset: Asset::Cny,
            side,
            floor_micro: Some(0),
            must_stay_zero: false,
            created_at_ms: 0,
            totals,
        }
    }

    #[test]
    fn balances_read_on_the_normal_side() {
        let totals = Totals {
            debits_pending_micro: 5,
            debits_posted_micro: 30,
            credits_pending_micro: 7,
            credits_posted_micro: 100,
        };
        let wallet = account(Side::Credit, totals);
        assert_eq!(wallet.balance_micro(), 70);
        assert_eq!(wallet.available_micro(), 65);
        let cash = account(Side::Debit, totals);
        assert_eq!(cash.balance_micro(), -70);
        assert_eq!(cash.available_micro(), -77);
        assert!(wallet.within_floor());
        assert!(!cash.within_floor());
        assert!(!wallet.is_zero());
    }

    #[test]
    fn names_round_trip() {
        for asset in Asset::ALL {
            assert_eq!(Asset::parse(asset.as_str()), Some(asset));
        }
        for side in Side::ALL {
            assert_eq!(Side::parse(side.as_str()), Some(side));
        }
        assert_eq!(Side::parse("Credit"), None);
    }
}
