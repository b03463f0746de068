//! suanwang's durable store: the system of record.
//!
//! [`Store`] is four traits, one per aggregate ([`PrincipalStore`],
//! [`SiteStore`], [`JobStore`], [`RoundStore`]), implemented once for both
//! databases ([`sqlite`], [`postgres`]): each supplies a small `Backend`
//! (its pools, leadership, and a round's set-wise writes), and the SQL they
//! share is written once, as generic functions (`sql::*`) over a `Conn` that
//! runs a statement on either. Each database has its own migrations, and
//! one contract test suite (`tests/it`) runs against both. Every
//! state-changing method writes its audit record in the same transaction as
//! the change; a method returns only after the transaction committed, so an
//! acknowledged write is durable.
//!
//! Rows ([`rows`]) are the store's own types: neither JSON bodies nor domain
//! objects, but typed with the domain's enums. The server converts at its
//! edge. Callers hold `Arc<dyn Store>` and `use suanwang_store::prelude::*`.

use async_trait::async_trait;

mod backend;
mod conn;
pub mod postgres;
pub mod rows;
mod sql;
pub mod sqlite;
mod stores;

pub use postgres::PgStore;
pub use rows::*;
pub use sqlite::SqliteStore;
pub use stores::{BillStore, JobStore, LedgerStore, PrincipalStore, RoundStore, SiteStore};
/// The ledger's own types (accounts, transfers, results), which
/// [`LedgerStore`] takes and returns.
pub use suanwang_ledger as ledger;

/// The store's traits, for calling them on `Arc<dyn Store>`.
pub mod prelude {
    pub use crate::{
        BillStore, JobStore, LedgerStore, PrincipalStore, RoundStore, SiteStore, Store,
    };
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name or id is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// This process does not hold the scheduling leadership.
    #[error("not the scheduling leader")]
    NotLeader,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Data in the database that breaks an invariant.
    #[error("corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A transaction the database aborted only because of a concurrent one
    /// (PostgreSQL's deadlock 40P01 or serialization failure 40001; SQLite's
    /// busy). Nothing of it was stored: running it again is safe.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(error)) => {
                matches!(
                    error.code().as_deref(),
                    Some("40P01" | "40001" | "5" | "517")
                )
            }
            _ => false,
        }
    }
}

/// Attempts of a transaction the database aborted as transient.
pub const TRANSIENT_ATTEMPTS_MAX: u32 = 3;

/// The durable store: every aggregate's trait. Implemented by
/// [`SqliteStore`] and [`PgStore`].
#[async_trait]
pub trait Store:
    PrincipalStore
    + SiteStore
    + JobStore
    + RoundStore
    + LedgerStore
    + BillStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    async fn ping(&self) -> Result<()>;
}

#[async_trait]
impl<B: backend::Backend> Store for B {
    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn ping(&self) -> Result<()> {
        use conn::Conn;
        self.reader().execute("SELECT 1", &[]).await?;
        Ok(())
    }
}
