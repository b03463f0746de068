//! The SQLite store: the embedded default. One file in WAL mode with
//! `synchronous=FULL`, so a committed transaction survives a power cut.
//! SQLite has one writer at a time: writes go through a one-connection pool
//! (no busy-wait storms), reads through a small read-only pool.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteRow, SqliteSynchronous,
};
use sqlx::Sqlite;

use crate::backend::Backend;
use crate::conn::{Arg, Conn, Dialect, Pooled, Row};
use crate::sql::lifecycle::{write_round, PLACED_EVENT, PLACE_ROW_SET, ROUND_JOB_SET};
use crate::sql::{placeholders, INSERT_ROWS_MAX, PENDING};
use crate::{Result, RoundWrite};
use suanwang_core::machine::round::{first_placement, JobUpdate, RoundPlan};

pub const READ_CONNECTIONS_MAX: u32 = 4;
/// Tasks per placing statement.
pub const ASSIGN_ROWS_MAX: usize = 10_000;
/// Page cache per connection, KiB.
pub const CACHE_KIB: u32 = 64 * 1024;

pub struct SqliteStore {
    checkpoint: SqlitePool,
    path: PathBuf,
    write: SqlitePool,
    read: SqlitePool,
    money: suanwang_core::bill::MoneyConfig,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// The operator's money settings (the platform's fee), applied by
    /// every settlement this store writes.
    pub fn with_money(mut self, money: suanwang_core::bill::MoneyConfig) -> Self {
        self.money = money;
        self
    }

    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // The default page cache is 2 MiB; a round touches every waiting
            // task and its index entries, so a cache that holds them saves
            // re-reading pages within one transaction.
            .pragma("cache_size", format!("-{}", CACHE_KIB))
            .pragma("temp_store", "memory");
        // The writer never checkpoints: a checkpoint inside a commit would
        // stall every submission waiting on that commit. A background task
        // checkpoints on its own connection instead (see `checkpointer`).
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&write).await?;
        let checkpoint = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        tokio::spawn(checkpointer(checkpoint.clone()));
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS_MAX)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            checkpoint,
            path: path.to_owned(),
            write,
            read,
            money: suanwang_core::bill::MoneyConfig::FREE,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Dialect for Sqlite {
    type Bound<'q> = SqliteArguments<'q>;

    /// SQLite takes `?` placeholders as written.
    fn statement(sql: &str) -> Cow<'_, str> {
        Cow::Borrowed(sql)
    }

    /// Row locks: SQLite has one writer, whose transaction sees every
    /// committed row and nothing changes under it, so none are needed.
    fn for_update(_of: &str) -> String {
        String::new()
    }

    fn arguments<'q>(args: &'q [Arg<'q>]) -> Result<SqliteArguments<'q>> {
        crate::conn::arguments::<Sqlite>(args)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn decode<R: Row>(row: &SqliteRow) -> Result<R> {
        Ok(R::from_row(row)?)
    }
}

/// Pending task rows placed by a round, from a JSON array of
/// `[job, idx, state, attempt, pool, site]`.
static PLACE_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET {} \
         FROM (SELECT json_extract(value, '$[0]') AS job, json_extract(value, '$[1]') AS idx, \
                      json_extract(value, '$[2]') AS state, json_extract(value, '$[3]') AS attempt, \
                      json_extract(value, '$[4]') AS pool, json_extract(value, '$[5]') AS site, \
                      json_extract(value, '$[6]') AS placed_at_ms, json_extract(value, '$[7]') AS price_micro, \
                      json_extract(value, '$[8]') AS transfer_micro_per_gb, json_extract(value, '$[9]') AS bid_micro, \
                      json_extract(value, '$[10]') AS data_mb \
               FROM json_each(?)) AS u \
         WHERE tasks.job = u.job AND tasks.idx = u.idx AND tasks.state = {}",
        PLACE_ROW_SET, *PENDING
    )
});

/// Rows of never-placed tasks a round places, from a JSON array of
/// `[job, low, high, units, pool, site, price, transfer, bid]`, placed at
/// the round's time, all in the state and attempt
/// `machine::round::first_placement` gives, bound once. Sorted by primary key: tasks is
/// a WITHOUT ROWID table, and appends in key order keep its B-tree pages
/// full.
const INSERT_PLACED: &str = "WITH RECURSIVE r(job, idx, high, units, pool, site, price, transfer, bid, data_mb) AS ( \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
            json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
            json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
            json_extract(value, '$[9]') \
     FROM json_each(?) \
     UNION ALL SELECT job, idx + 1, high, units, pool, site, price, transfer, bid, data_mb FROM r WHERE idx + 1 < high) \
     INSERT INTO tasks (job, idx, state, attempt, units, pool, site, placed_at_ms, price_micro, \
                        transfer_micro_per_gb, bid_micro, data_mb) \
     SELECT job, idx, ?, ?, units, pool, site, ?, price, transfer, bid, data_mb FROM r ORDER BY job, idx";

/// A round's events, from a JSON array of `[job, detail]`.
static INSERT_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO events (job, task, at_ms, kind, detail) \
         SELECT json_extract(value, '$[0]'), NULL, ?, {}, json_extract(value, '$[1]') FROM json_each(?)",
        *PLACED_EVENT
    )
});

/// A round's job row changes, from a JSON array of `round::JobUpdate`s.
static UPDATE_JOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET {} \
         FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS materialized, \
                      json_extract(value, '$[2]') AS state, json_extract(value, '$[3]') AS has_why, \
                      json_extract(value, '$[4]') AS why FROM json_each(?)) AS u \
         WHERE jobs.id = u.id",
        ROUND_JOB_SET
    )
});

#[async_trait]
impl Backend for SqliteStore {
    fn money(&self) -> suanwang_core::bill::MoneyConfig {
        self.money
    }

    const NAME: &'static str = "sqlite";

    type Tx<'c> = sqlx::Transaction<'c, Sqlite>;
    type Pooled<'p> = Pooled<'p, Sqlite>;

    async fn begin(&self) -> Result<Self::Tx<'static>> {
        Ok(self.write.begin().await?)
    }

    fn reader(&self) -> Pooled<'_, Sqlite> {
        Pooled(&self.read)
    }

    /// The one-connection writer.
    fn writer(&self) -> Pooled<'_, Sqlite> {
        Pooled(&self.write)
    }

    /// One SQLite file has one server (the server locks the data directory),
    /// so that server always leads.
    async fn try_lead(&self) -> Result<bool> {
        Ok(true)
    }

    async fn apply_round(&self, round: &RoundWrite) -> Result<()> {
        let started = std::time::Instant::now();
        let mut tx = self.write.begin().await?;
        write_round::<Self>(&mut tx, round).await?;
        let written = started.elapsed();
        tx.commit().await?;
        tracing::debug!(
            written_s = written.as_secs_f64(),
            committed_s = started.elapsed().as_secs_f64(),
            placements = round.placements.len(),
            whys = round.whys.len(),
            "round written"
        );
        Ok(())
    }

    /// A round's row changes, set-wise through `json_each`: one statement
    /// per kind of change and chunk instead of one per task, since each
    /// statement is a round trip to SQLite's worker thread.
    async fn write_placements(
        tx: &mut Self::Tx<'_>,
        plan: &RoundPlan<'_>,
        at_ms: i64,
    ) -> Result<()> {
        let mut updated = 0u64;
        for chunk in plan.updates.chunks(ASSIGN_ROWS_MAX) {
            let rows = serde_json::Value::Array(
                chunk
                    .iter()
                    .map(|p| {
                        serde_json::json!([
                            p.job,
                            p.index,
                            p.state.as_str(),
                            p.attempt,
                            p.pool,
                            p.site,
                            at_ms,
                            p.price.price_micro_yuan_per_unit_hour,
                            p.price.transfer_micro_yuan_per_gb,
                            p.price.bid_micro_yuan_per_unit_hour,
                            p.price.data_mb
                        ])
                    })
                    .collect(),
            )
            .to_string();
            updated += tx.execute(&PLACE_ROWS, &[rows.into()]).await?;
        }
        // Read in this transaction, and SQLite has one writer.
        assert_eq!(
            updated,
            plan.updates.len() as u64,
            "every pending row read is placed"
        );
        let mut rows_planned = 0u64;
        let mut inserted = 0u64;
        // Chunks of ranges holding about ASSIGN_ROWS_MAX tasks each.
        let mut start = 0;
        while start < plan.inserts.len() {
            let mut end = start;
            let mut rows = 0u64;
            while end < plan.inserts.len() && (rows as usize) < ASSIGN_ROWS_MAX {
                rows += plan.inserts[end].high - plan.inserts[end].low;
                end += 1;
            }
            rows_planned += rows;
            let ranges = serde_json::Value::Array(
                plan.inserts[start..end]
                    .iter()
                    .map(|i| {
                        serde_json::json!([
                            i.job,
                            i.low,
                            i.high,
                            i.units,
                            i.pool,
                            i.site,
                            i.price.price_micro_yuan_per_unit_hour,
                            i.price.transfer_micro_yuan_per_gb,
                            i.price.bid_micro_yuan_per_unit_hour,
                            i.price.data_mb
                        ])
                    })
                    .collect(),
            )
            .to_string();
            let (state, attempt) = first_placement();
            let args = [
                ranges.into(),
                state.as_str().into(),
                attempt.into(),
                at_ms.into(),
            ];
            inserted += tx.execute(INSERT_PLACED, &args).await?;
            start = end;
        }
        assert_eq!(inserted, rows_planned, "one row per never-placed task");
        Ok(())
    }

    /// The rest of a round: its events, one new version of each changed
    /// job row, and the placed-on sites' versions.
    async fn write_round_rows(
        tx: &mut Self::Tx<'_>,
        events: &[(&str, String)],
        jobs: &[JobUpdate<'_>],
        sites: &[&str],
        at_ms: i64,
    ) -> Result<()> {
        for chunk in events.chunks(ASSIGN_ROWS_MAX) {
            let rows = serde_json::Value::Array(
                chunk
                    .iter()
                    .map(|(job, detail)| serde_json::json!([job, detail]))
                    .collect(),
            )
            .to_string();
            tx.execute(&INSERT_EVENTS, &[at_ms.into(), rows.into()])
                .await?;
        }
        for chunk in jobs.chunks(ASSIGN_ROWS_MAX) {
            let rows = serde_json::Value::Array(
                chunk
                    .iter()
                    .map(|j| {
                        serde_json::json!([
                            j.id,
                            j.materialized,
                            j.state.map(|s| s.as_str()),
                            j.why.is_some(),
                            j.why.flatten()
                        ])
                    })
                    .collect(),
            )
            .to_string();
            tx.execute(&UPDATE_JOBS, &[rows.into()]).await?;
        }
        for chunk in sites.chunks(INSERT_ROWS_MAX) {
            let sql = format!(
                "UPDATE sites SET version = version + 1 WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let args: Vec<Arg<'_>> = chunk.iter().map(|site| (*site).into()).collect();
            tx.execute(&sql, &args).await?;
        }
        Ok(())
    }
}

/// How often the WAL is copied back into the database file.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Checkpoints the WAL in the background, off the writer's path. PASSIVE
/// never blocks the writer; when readers pin old frames it copies what it
/// can and tries again next time. Ends when the store (its pool) is closed.
async fn checkpointer(pool: SqlitePool) {
    loop {
        tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(%error, "WAL checkpoint failed; retrying");
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Stops the checkpointer; the other pools close with their handles.
        let checkpoint = self.checkpoint.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { checkpoint.close().await });
        }
    }
}
