//! Transfers: an amount moved from a debit account to a credit account, in
//! one phase or two.
//!
//! *Kinds* (after TigerBeetle). `Posted` moves money at once. `Pending`
//! reserves it (counted against the debited account's floor) until it is
//! posted (`Post`, for at most the reserved amount: posting for less
//! releases the rest), voided (`Void`), or expires: at `expires_at_ms` it
//! can no longer be posted, and `expire(now_ms)` records its `Expire`, a
//! transfer with the derived id `expire:{pending}` so that a replay of the
//! history sees it. Each pending is resolved once.
//!
//! *Immutable.* A transfer is never changed or removed once created; a
//! mistake is corrected by a reversing transfer (code [`codes::REVERSAL`]).
//!
//! *Idempotent.* A transfer whose id exists answers `Exists` when its
//! content is the same (a resend), `ExistsWithDifferentFields` when not.
//! The time is not content: the ledger records when it created the
//! transfer ([`Record::at_ms`]), so a resend later is still the same.
//!
//! *Linked.* A transfer with `linked` set chains to the next in the batch;
//! a chain (each linked but the last) is applied whole or not at all.

use std::fmt;

use crate::account::{Asset, TOTAL_MICRO_MAX};
use crate::id::{AccountId, TransferId};

/// Reason codes: why money moved. Callers add their own above
/// [`codes::CALLER_MIN`]; 0 is not a code.
pub mod codes {
    /// Money in: the operator's cash credits a wallet.
    pub const TOPUP: u16 = 1;
    /// A reservation for work placed but not yet metered.
    pub const HOLD: u16 = 2;
    /// Metered usage: a wallet pays a provider.
    pub const CHARGE: u16 = 3;
    /// The platform's fee.
    pub const FEE: u16 = 4;
    /// Moving a job's data between regions.
    pub const TRANSFER_CHARGE: u16 = 5;
    /// Undoes an earlier transfer (transfers are never edited).
    pub const REVERSAL: u16 = 6;
    /// The ledger's own expiry of a pending transfer.
    pub const EXPIRY: u16 = 7;
    /// Money out: a provider's earnings paid to its bank.
    pub const PAYOUT: u16 = 8;
    /// The lowest code a caller may define for itself.
    pub const CALLER_MIN: u16 = 100;
}

/// The longest [`Transfer::reference`], in bytes.
pub const REFERENCE_LEN_MAX: usize = 256;

/// The largest single amount, micro-yuan (10^9 yuan).
pub const AMOUNT_MICRO_MAX: i64 = 1_000_000_000_000_000;

/// The longest a pending transfer may stay open, ms (366 days).
pub const PENDING_TIMEOUT_MS_MAX: i64 = 366 * 24 * 3600 * 1000;

const _: () = assert!(AMOUNT_MICRO_MAX < TOTAL_MICRO_MAX);

/// How a transfer moves its amount.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Single phase: posted at once.
    Posted,
    /// Reserved until posted, voided or expired; not postable from
    /// `expires_at_ms` on.
    Pending { expires_at_ms: i64 },
    /// Posts `amount_micro` (at most the pending's) of `pending`.
    Post { pending: TransferId },
    /// Releases `pending` (the amount given must be the pending's).
    Void { pending: TransferId },
    /// Releases `pending` at its expiry. Made by the ledger only.
    Expire { pending: TransferId },
}

impl Kind {
    pub fn phase(&self) -> Phase {
        match self {
            Kind::Posted => Phase::Posted,
            Kind::Pending { .. } => Phase::Pending,
            Kind::Post { .. } => Phase::Post,
            Kind::Void { .. } => Phase::Void,
            Kind::Expire { .. } => Phase::Expire,
        }
    }

    /// The pending transfer a post, void or expiry resolves.
    pub fn pending(&self) -> Option<&TransferId> {
        match self {
            Kind::Post { pending } | Kind::Void { pending } | Kind::Expire { pending } => {
                Some(pending)
            }
            Kind::Posted | Kind::Pending { .. } => None,
        }
    }

    /// When a pending transfer stops being postable.
    pub fn expires_at_ms(&self) -> Option<i64> {
        match self {
            Kind::Pending { expires_at_ms } => Some(*expires_at_ms),
            _ => None,
        }
    }
}

/// A [`Kind`] without its data: what the store keeps in a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Posted,
    Pending,
    Post,
    Void,
    Expire,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Posted,
        Phase::Pending,
        Phase::Post,
        Phase::Void,
        Phase::Expire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Posted => "posted",
            Phase::Pending => "pending",
            Phase::Post => "post",
            Phase::Void => "void",
            Phase::Expire => "expire",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|phase| phase.as_str() == text)
    }
}

/// A transfer as its caller asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transfer {
    pub id: TransferId,
    pub debit: AccountId,
    pub credit: AccountId,
    /// In `1..=AMOUNT_MICRO_MAX`.
    pub amount_micro: i64,
    pub asset: Asset,
    /// Why ([`codes`]); not 0.
    pub code: u16,
    /// What it is for (a usage key, a round id), at most
    /// [`REFERENCE_LEN_MAX`] bytes, no control characters.
    pub reference: String,
    pub kind: Kind,
    /// Chained to the next transfer of the batch.
    pub linked: bool,
}

impl Transfer {
    /// A posted yuan transfer with no reference, not linked.
    pub fn new(
        id: TransferId,
        debit: AccountId,
        credit: AccountId,
        amount_micro: i64,
        code: u16,
    ) -> Transfer {
        Transfer {
            id,
            debit,
            credit,
            amount_micro,
            asset: Asset::Cny,
            code,
            reference: String::new(),
            kind: Kind::Posted,
            linked: false,
        }
    }

    pub fn kind(mut self, kind: Kind) -> Transfer {
        self.kind = kind;
        self
    }

    pub fn reference(mut self, reference: impl Into<String>) -> Transfer {
        self.reference = reference.into();
        self
    }

    /// Chained to the next transfer of its batch.
    pub fn linked(mut self) -> Transfer {
        self.linked = true;
        self
    }

    /// The first field, in declaration order, in which `other` differs
    /// (the id aside).
    pub fn differs(&self, other: &Transfer) -> Option<&'static str> {
        if self.debit != other.debit {
            Some("debit")
        } else if self.credit != other.credit {
            Some("credit")
        } else if self.amount_micro != other.amount_micro {
            Some("amount_micro")
        } else if self.asset != other.asset {
            Some("asset")
        } else if self.code != other.code {
            Some("code")
        } else if self.reference != other.reference {
            Some("reference")
        } else if self.kind != other.kind {
            Some("kind")
        } else if self.linked != other.linked {
            Some("linked")
        } else {
            None
        }
    }
}

/// A transfer the ledger created, and when.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub transfer: Transfer,
    /// The `now_ms` of the call that created it.
    pub at_ms: i64,
}

/// Where a pending transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PendingState {
    Open,
    Posted,
    Voided,
    Expired,
}

impl PendingState {
    /// The state a transfer of `phase` leaves its pending in.
    pub fn after(phase: Phase) -> Option<PendingState> {
        match phase {
            Phase::Post => Some(PendingState::Posted),
            Phase::Void => Some(PendingState::Voided),
            Phase::Expire => Some(PendingState::Expired),
            Phase::Posted | Phase::Pending => None,
        }
    }
}

/// What a created or resent transfer (or account) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    /// It existed with the same content: nothing changed.
    Exists,
}

/// One result per transfer of a batch.
pub type CreateResult = Result<Applied, TransferError>;

/// Why a transfer was not created. Checked in the order listed (but for
/// `MustStayZero`, checked with the accounts for a pending transfer, and
/// at the end of the chain otherwise); the first that applies is the
/// answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("the batch holds more than {max} transfers")]
    BatchTooLarge { max: usize },
    #[error("a transfer with this id exists with a different {field}")]
    ExistsWithDifferentFields { field: &'static str },
    #[error("ids starting with expire: are the ledger's own")]
    ReservedId,
    #[error("only the ledger expires a pending transfer")]
    ExpireByLedgerOnly,
    #[error("the amount must be positive")]
    AmountNotPositive,
    #[error("an amount is at most {AMOUNT_MICRO_MAX} micro-yuan")]
    AmountTooLarge,
    #[error("0 is not a reason code")]
    CodeZero,
    #[error("a reference is at most {REFERENCE_LEN_MAX} bytes without control characters")]
    ReferenceInvalid,
    #[error("debit and credit are the same account")]
    SameAccount,
    #[error("a pending transfer's id is at most {max} bytes, to leave room for its expiry's")]
    PendingIdTooLong { max: usize },
    #[error("the pending transfer expires at {expires_at_ms}, not after now ({now_ms})")]
    ExpiresNotAfterNow { expires_at_ms: i64, now_ms: i64 },
    #[error("a pending transfer stays open at most {PENDING_TIMEOUT_MS_MAX} ms")]
    ExpiresTooLate { expires_at_ms: i64 },
    #[error("no account {id}")]
    AccountNotFound { id: AccountId },
    #[error("account {account} is not of this transfer's asset")]
    AssetMismatch { account: AccountId },
    #[error("no pending transfer {id}")]
    PendingNotFound { id: TransferId },
    #[error("transfer {id} is not a pending one")]
    NotPending { id: TransferId },
    #[error("the pending transfer has a different {field}")]
    PendingDiffers { field: &'static str },
    #[error("the pending transfer was posted already")]
    PendingAlreadyPosted,
    #[error("the pending transfer was voided already")]
    PendingAlreadyVoided,
    #[error("the pending transfer expired at {expires_at_ms}")]
    PendingHasExpired { expires_at_ms: i64 },
    /// Its expiry is recorded and it is not due yet: only if the clock
    /// went back.
    #[error("the pending transfer expired already")]
    PendingAlreadyExpired,
    #[error("posting {amount_micro} of a pending {pending_micro}")]
    PostExceedsPending {
        amount_micro: i64,
        pending_micro: i64,
    },
    #[error("voiding {amount_micro} of a pending {pending_micro}: a void names the whole amount")]
    VoidAmountDiffers {
        amount_micro: i64,
        pending_micro: i64,
    },
    #[error("a total of account {account} would pass {TOTAL_MICRO_MAX}")]
    Overflow { account: AccountId },
    /// `balance_micro` is the available balance before the transfer.
    #[error(
        "account {account} would fall below its floor: {balance_micro} available, \
         floor {floor_micro}, amount {amount_micro}"
    )]
    ExceedsFloor {
        account: AccountId,
        balance_micro: i64,
        floor_micro: i64,
        amount_micro: i64,
    },
    /// The last transfer of a chain that leaves a must-stay-zero account
    /// off zero.
    #[error("account {account} must be zero at the end of the chain")]
    MustStayZero { account: AccountId },
    /// Another transfer of the chain, the one at `because` in the batch,
    /// failed.
    #[error("transfer {because} of the batch, in the same linked chain, failed")]
    LinkedChainFailed { because: usize },
    /// The batch ends with a linked transfer: its chain has no end.
    #[error("the batch ends inside a linked chain")]
    LinkedChainOpen,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Posted => f.write_str("posted"),
            Kind::Pending { expires_at_ms } => write!(f, "pending until {expires_at_ms}"),
            Kind::Post { pending } => write!(f, "post of {pending}"),
            Kind::Void { pending } => write!(f, "void of {pending}"),
            Kind::Expire { pending } => write!(f, "expiry of {pending}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip() {
        for phase in Phase::ALL {
            assert_eq!(Phase::parse(phase.as_str()), Some(phase));
        }
        let p = TransferId::new("p").unwrap();
        assert_eq!(Kind::Void { pending: p.clone() }.phase(), Phase::Void);
        assert_eq!(Kind::Post { pending: p.clone() }.pending(), Some(&p));
        assert_eq!(Kind::Posted.pending(), None);
        assert_eq!(
            PendingState::after(Phase::Expire),
            Some(PendingState::Expired)
        );
    }

    #[test]
    fn differences_are_named() {
        let id = |s: &str| TransferId::new(s).unwrap();
        let account = |s: &str| AccountId::new(s).unwrap();
        let a = Transfer::new(id("t"), account("a"), account("b"), 5, codes::CHARGE);
        assert_eq!(a.differs(&a.clone()), None);
        assert_eq!(a.differs(&a.clone().reference("x")), Some("reference"));
        assert_eq!(a.differs(&a.clone().linked()), Some("linked"));
        let pending = a.clone().kind(Kind::Pending { expires_at_ms: 9 });
        assert_eq!(a.differs(&pending), Some("kind"));
    }
}
