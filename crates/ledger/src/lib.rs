//! suanwang's double-entry ledger: accounts and immutable, idempotent,
//! two-phase transfers in integer micro-yuan.
//!
//! **Architecture invariant:** pure. No IO, no clock (every call that needs
//! the time takes `now_ms`), no randomness, and no `HashMap` iteration
//! order decides anything (maps are for lookup; what is returned is in
//! batch, history, id or expiry order). The server's store, the simulator
//! and the benchmark all apply the same [`Book`].
//!
//! The data model follows TigerBeetle's (accounts; transfers with
//! caller-chosen ids; pending, post, void and expiry; limits by flags), with
//! text ids, a floor per account instead of two balance flags, and expiries
//! recorded as transfers of their own.
//!
//! # The rules and why
//!
//! - **Integers only.** Amounts are micro-yuan in `i64` (`amount_micro`,
//!   positive, at most [`AMOUNT_MICRO_MAX`]); every running total stays at
//!   most [`TOTAL_MICRO_MAX`], so no balance computation can overflow;
//!   passing it is the error `Overflow`, never a panic or a wrap.
//! - **Double entry.** A transfer debits one account and credits another of
//!   the same [`Asset`]; the sum of debits equals the sum of credits over
//!   all accounts, posted and pending, at all times (asserted after every
//!   call; checked from the history by [`Ledger::check`]).
//! - **Immutable, append-only.** Transfers are never changed or removed; a
//!   correction is a new transfer (`codes::REVERSAL`). Any past balance is
//!   the sum of the transfers up to then ([`Replay`]).
//! - **Idempotent by id.** Ids are the caller's, derived from what is
//!   recorded (`hold:{job}:{task}:{attempt}`): a resend is `Exists`, a
//!   different transfer under a used id `ExistsWithDifferentFields`. The
//!   time a transfer was created ([`Record::at_ms`]) is the ledger's, not
//!   content, so a later resend is still the same transfer.
//! - **Floors.** An account may not go below its floor counting what
//!   pending transfers reserve ([`account`]): a wallet cannot be overdrawn
//!   beyond the credit the operator granted ([`Book::set_floor`], recorded
//!   as a [`FloorChange`]).
//! - **Two phases.** A pending transfer reserves; it is posted (for at most
//!   its amount, the rest released), voided, or expires, once
//!   ([`transfer`]). Expiry is recorded as a transfer (`expire:{id}`) so
//!   that the history alone replays to the same balances.
//! - **Linked chains** apply whole or not at all: a charge split into
//!   earnings and a fee cannot half happen.
//! - **Must-stay-zero accounts** (the imbalance account a split passes
//!   through) are zero at the end of every chain, and take no pending
//!   transfers (an expiry could leave them off zero).
//! - **A limit on everything:** ids ([`ID_LEN_MAX`]), references
//!   ([`REFERENCE_LEN_MAX`]), batches ([`BATCH_TRANSFERS_MAX`],
//!   [`BATCH_ACCOUNTS_MAX`], [`EXPIRE_BATCH_MAX`]), pending lifetimes
//!   ([`PENDING_TIMEOUT_MS_MAX`]), amounts and totals.
//!
//! # Two callers, one core
//!
//! [`Ledger`] holds everything in memory. The store instead asks
//! [`Needs::of_transfers`] what a batch needs, loads just that into a
//! [`Book::partial`] inside its transaction (accounts locked), calls
//! [`Book::create_transfers`], and writes [`Book::changes`]: the new
//! transfers in order, the accounts' new totals, the pendings opened and
//! resolved.

pub mod account;
pub mod book;
pub mod chain;
pub mod id;
mod index;
pub mod ledger;
pub mod replay;
pub mod transfer;

#[cfg(test)]
mod tests;

pub use account::{
    Account, AccountError, Asset, FloorChange, FloorError, NewAccount, Side, Totals,
    TOTAL_MICRO_MAX,
};
pub use book::{
    AccountResult, Book, Changes, LoadError, Needs, BATCH_ACCOUNTS_MAX, BATCH_TRANSFERS_MAX,
    EXPIRE_BATCH_MAX,
};
pub use id::{AccountId, IdError, TransferId, EXPIRY_PREFIX, ID_LEN_MAX, PENDING_ID_LEN_MAX};
pub use ledger::Ledger;
pub use replay::{CheckError, Replay, Replayed};
pub use transfer::{
    codes, Applied, CreateResult, Kind, PendingState, Phase, Record, Transfer, TransferError,
    AMOUNT_MICRO_MAX, PENDING_TIMEOUT_MS_MAX, REFERENCE_LEN_MAX,
};
