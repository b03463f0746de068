//! What one database's store supplies; everything else is shared.
//!
//! [`Backend`] is implemented by [`SqliteStore`](crate::SqliteStore) and
//! [`PgStore`](crate::PgStore). The shared logic (`crate::sql`) is written
//! once as generic functions over it, and the store traits
//! (`crate::stores`) are blanket impls for every `Backend`.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::conn::{Conn, Tx};
use crate::{Result, RoundWrite};
use suanwang_core::machine::round::{JobUpdate, RoundPlan};

#[async_trait]
pub(crate) trait Backend: Send + Sync + Debug + 'static {
    /// `sqlite` or `postgres`.
    const NAME: &'static str;

    /// A write transaction. Its lifetime is that of the connection it runs
    /// on: a pool's (`'static`), or the scheduling leader's.
    type Tx<'c>: Tx + crate::sql::ledger::LedgerTx;

    /// A pool, one statement per connection.
    type Pooled<'p>: Conn
    where
        Self: 'p;

    /// The operator's money settings, for settlements.
    fn money(&self) -> suanwang_core::bill::MoneyConfig;

    /// Begins a write transaction.
    async fn begin(&self) -> Result<Self::Tx<'static>>;

    /// Where reads go.
    fn reader(&self) -> Self::Pooled<'_>;

    /// Where single-statement writes go, outside a transaction.
    fn writer(&self) -> Self::Pooled<'_>;

    /// Takes or confirms the scheduling leadership.
    async fn try_lead(&self) -> Result<bool>;

    /// Writes a round (`sql::lifecycle::write_round`) in one transaction,
    /// fenced as this database fences rounds.
    async fn apply_round(&self, round: &RoundWrite) -> Result<()>;

    /// A round's task row changes (`RoundPlan::updates` and `inserts`),
    /// set-wise.
    async fn write_placements(
        tx: &mut Self::Tx<'_>,
        plan: &RoundPlan<'_>,
        at_ms: i64,
    ) -> Result<()>;

    /// The rest of a round, set-wise: its events (`placed`, one per job,
    /// pool and site), one change per job row, the placed-on sites'
    /// versions (sorted: the lock order).
    async fn write_round_rows(
        tx: &mut Self::Tx<'_>,
        events: &[(&str, String)],
        jobs: &[JobUpdate<'_>],
        sites: &[&str],
        at_ms: i64,
    ) -> Result<()>;
}
