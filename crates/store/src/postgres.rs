//! The PostgreSQL store, for deployments with several `serve` processes.
//! Scheduling leadership is a session advisory lock held on one dedicated
//! connection; the round's writes run on that same connection, so a process
//! that lost the lock (its connection died) cannot write a round.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult, PgRow,
};
use sqlx::{ConnectOptions, Connection, Postgres};
use tokio::sync::Mutex;

use crate::backend::Backend;
use crate::conn::{Arg, Dialect, Pooled, Row};
use crate::sql::lifecycle::{write_round, PLACED_EVENT, PLACE_ROW_SET, ROUND_JOB_SET};
use crate::sql::{to_i64, PENDING};
use crate::{Result, RoundWrite, StoreError};
use suanwang_core::machine::round::{first_placement, JobUpdate, RoundPlan};

pub const CONNECTIONS_MAX: u32 = 16;
/// The advisory lock key of the scheduling leader ("suanwang" in ASCII, folded).
pub const LEADER_LOCK_KEY: i64 = 0x7375_616e_7761_6e67;

pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
    leader: Mutex<Option<PgConnection>>,
    money: suanwang_core::bill::MoneyConfig,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("PgStore")
            .field("host", &self.options.get_host())
            .field("database", &self.options.get_database())
            .finish()
    }
}

impl PgStore {
    /// The operator's money settings (the platform's fee), applied by
    /// every settlement this store writes.
    pub fn with_money(mut self, money: suanwang_core::bill::MoneyConfig) -> Self {
        self.money = money;
        self
    }

    pub async fn open(url: &str) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("suanwang")
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS_MAX)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            options,
            leader: Mutex::new(None),
            money: suanwang_core::bill::MoneyConfig::FREE,
        })
    }
}

impl Dialect for Postgres {
    type Bound<'q> = PgArguments;

    /// Rewrites `?` placeholders as PostgreSQL's `$1, $2, ...`. The shared
    /// SQL never has `?` inside a string literal.
    fn statement(sql: &str) -> Cow<'_, str> {
        if !sql.contains('?') {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// Locks the rows a read-then-write transaction decides on (of the
    /// table `of` in a join), so that a concurrent writer waits instead of
    /// being overwritten with a decision made on stale rows.
    fn for_update(of: &str) -> String {
        format!(" FOR UPDATE OF {of}")
    }

    fn arguments<'q>(args: &'q [Arg<'q>]) -> Result<PgArguments> {
        crate::conn::arguments::<Postgres>(args)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn decode<R: Row>(row: &PgRow) -> Result<R> {
        Ok(R::from_row(row)?)
    }
}

/// Pending task rows placed by a round, from arrays of (job, idx, state,
/// attempt, pool, site).
static PLACE_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks t SET {} \
         FROM (SELECT *, $7::bigint AS placed_at_ms FROM unnest($1::text[], $2::bigint[], $3::text[], \
                      $4::bigint[], $5::text[], $6::text[], $8::bigint[], $9::bigint[], $10::bigint[], \
                      $11::bigint[]) \
               AS r(job, idx, state, attempt, pool, site, price_micro, transfer_micro_per_gb, bid_micro, \
                    data_mb)) AS u \
         WHERE t.job = u.job AND t.idx = u.idx AND t.state = {}",
        PLACE_ROW_SET, *PENDING
    )
});

/// Rows of never-placed tasks a round places, from arrays of index ranges,
/// all in the state and attempt `machine::round::first_placement` gives.
const INSERT_PLACED: &str = "INSERT INTO tasks (job, idx, state, attempt, units, pool, site, \
                        placed_at_ms, price_micro, transfer_micro_per_gb, bid_micro, data_mb) \
     SELECT i.job, g.idx, $7, $8, i.units, i.pool, i.site, $9, i.price, i.transfer, i.bid, i.data_mb \
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], \
                 $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[]) \
          AS i(job, low, high, units, pool, site, price, transfer, bid, data_mb), \
          generate_series(i.low, i.high - 1) AS g(idx)";

/// A round's events, from arrays of (job, detail).
static INSERT_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO events (job, task, at_ms, kind, detail) \
         SELECT job, NULL, $3, {}, detail FROM unnest($1::text[], $2::text[]) AS e(job, detail)",
        *PLACED_EVENT
    )
});

/// A round's job row changes, from arrays of `round::JobUpdate` fields.
static UPDATE_JOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET {} \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bool[], $5::text[]) \
              AS u(id, materialized, state, has_why, why) \
         WHERE jobs.id = u.id",
        ROUND_JOB_SET
    )
});

#[derive(Debug, sqlx::FromRow)]
struct Locked {
    locked: bool,
}

#[async_trait]
impl Backend for PgStore {
    fn money(&self) -> suanwang_core::bill::MoneyConfig {
        self.money
    }

    const NAME: &'static str = "postgres";

    type Tx<'c> = sqlx::Transaction<'c, Postgres>;
    type Pooled<'p> = Pooled<'p, Postgres>;

    async fn begin(&self) -> Result<Self::Tx<'static>> {
        Ok(self.pool.begin().await?)
    }

    fn reader(&self) -> Pooled<'_, Postgres> {
        Pooled(&self.pool)
    }

    fn writer(&self) -> Pooled<'_, Postgres> {
        Pooled(&self.pool)
    }

    async fn try_lead(&self) -> Result<bool> {
        let mut leader = self.leader.lock().await;
        if let Some(connection) = leader.as_mut() {
            match sqlx::query("SELECT 1").execute(&mut *connection).await {
                Ok(_) => return Ok(true),
                Err(error) => {
                    tracing::warn!(%error, "lost the leader connection; leadership released");
                    *leader = None;
                }
            }
        }
        let mut connection = self.options.connect().await?;
        let Locked { locked } = sqlx::query_as("SELECT pg_try_advisory_lock($1) AS locked")
            .bind(LEADER_LOCK_KEY)
            .fetch_one(&mut connection)
            .await?;
        if locked {
            *leader = Some(connection);
        } else {
            connection.close().await.ok();
        }
        Ok(locked)
    }

    /// On the leader's connection only: a process that lost the lock (its
    /// connection died) cannot write a round.
    async fn apply_round(&self, round: &RoundWrite) -> Result<()> {
        let mut leader = self.leader.lock().await;
        let Some(connection) = leader.as_mut() else {
            return Err(StoreError::NotLeader);
        };
        let mut tx = connection.begin().await?;
        write_round::<Self>(&mut tx, round).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A round's row changes as three set-wise statements (`unnest` arrays):
    /// a round may place 100,000 tasks, and a statement per task would
    /// spend the round in round trips. Never-placed tasks are inserted
    /// (`generate_series` over each range), which costs a third less than
    /// rewriting a pending row and leaves no dead tuple behind.
    async fn write_placements(
        tx: &mut Self::Tx<'_>,
        plan: &RoundPlan<'_>,
        at_ms: i64,
    ) -> Result<()> {
        if !plan.updates.is_empty() {
            let (mut jobs, mut idxs, mut pools, mut sites) = (vec![], vec![], vec![], vec![]);
            let (mut states, mut attempts) = (vec![], vec![]);
            let (mut prices, mut transfers, mut bids) = (vec![], vec![], vec![]);
            let mut data = vec![];
            for p in &plan.updates {
                data.push(to_i64(p.price.data_mb));
                prices.push(p.price.price_micro_yuan_per_unit_hour);
                transfers.push(p.price.transfer_micro_yuan_per_gb);
                bids.push(p.price.bid_micro_yuan_per_unit_hour);
                jobs.push(p.job);
                idxs.push(to_i64(p.index));
                states.push(p.state.as_str());
                attempts.push(i64::from(p.attempt));
                pools.push(p.pool);
                sites.push(p.site);
            }
            let updated = sqlx::query(&PLACE_ROWS)
                .bind(&jobs)
                .bind(&idxs)
                .bind(&states)
                .bind(&attempts)
                .bind(&pools)
                .bind(&sites)
                .bind(at_ms)
                .bind(&prices)
                .bind(&transfers)
                .bind(&bids)
                .bind(&data)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            // The rows were read under the jobs' locks, which every writer
            // of a job's tasks takes first: none changed since.
            assert_eq!(
                updated,
                plan.updates.len() as u64,
                "every pending row read is placed"
            );
        }
        if !plan.inserts.is_empty() {
            let n = plan.inserts.len();
            let (mut jobs, mut lows, mut highs, mut units, mut pools, mut sites) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut prices, mut transfers, mut bids) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let mut data = Vec::with_capacity(n);
            let mut rows = 0u64;
            for insert in &plan.inserts {
                data.push(to_i64(insert.price.data_mb));
                prices.push(insert.price.price_micro_yuan_per_unit_hour);
                transfers.push(insert.price.transfer_micro_yuan_per_gb);
                bids.push(insert.price.bid_micro_yuan_per_unit_hour);
                jobs.push(insert.job);
                lows.push(to_i64(insert.low));
                highs.push(to_i64(insert.high));
                units.push(to_i64(insert.units));
                pools.push(insert.pool);
                sites.push(insert.site);
                rows += insert.high - insert.low;
            }
            let (first, first_attempt) = first_placement();
            let inserted = sqlx::query(INSERT_PLACED)
                .bind(&jobs)
                .bind(&lows)
                .bind(&highs)
                .bind(&units)
                .bind(&pools)
                .bind(&sites)
                .bind(first.as_str())
                .bind(i64::from(first_attempt))
                .bind(at_ms)
                .bind(&prices)
                .bind(&transfers)
                .bind(&bids)
                .bind(&data)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            assert_eq!(inserted, rows, "one row per never-placed task");
        }
        Ok(())
    }

    /// The rest of a round, one statement each: its events, one new
    /// version of each changed job row, and the placed-on sites' versions
    /// (locked in id order, like every writer of sites).
    async fn write_round_rows(
        tx: &mut Self::Tx<'_>,
        events: &[(&str, String)],
        jobs: &[JobUpdate<'_>],
        sites: &[&str],
        at_ms: i64,
    ) -> Result<()> {
        if !events.is_empty() {
            let event_jobs: Vec<&str> = events.iter().map(|e| e.0).collect();
            let details: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
            sqlx::query(&INSERT_EVENTS)
                .bind(&event_jobs)
                .bind(&details)
                .bind(at_ms)
                .execute(&mut **tx)
                .await?;
        }
        if !jobs.is_empty() {
            let ids: Vec<&str> = jobs.iter().map(|j| j.id).collect();
            let materialized: Vec<Option<i64>> =
                jobs.iter().map(|j| j.materialized.map(to_i64)).collect();
            let states: Vec<Option<&str>> =
                jobs.iter().map(|j| j.state.map(|s| s.as_str())).collect();
            let has_why: Vec<bool> = jobs.iter().map(|j| j.why.is_some()).collect();
            let whys: Vec<Option<&str>> = jobs.iter().map(|j| j.why.flatten()).collect();
            sqlx::query(&UPDATE_JOBS)
                .bind(&ids)
                .bind(&materialized)
                .bind(&states)
                .bind(&has_why)
                .bind(&whys)
                .execute(&mut **tx)
                .await?;
        }
        if !sites.is_empty() {
            sqlx::query(
                "UPDATE sites SET version = version + 1 WHERE id IN \
                 (SELECT id FROM sites WHERE id = ANY($1) ORDER BY id FOR UPDATE)",
            )
            .bind(sites)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}
