//! The SQLite store: the embedded default. One file in WAL mode with
//! `synchronous=FULL`, so a committed transaction survives a power cut.
//! SQLite has one writer at a time: writes go through a one-connection pool
//! (no busy-wait storms), reads through a small read-only pool.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::shared::impl_store;
use crate::{Result, RoundWrite};

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
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
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
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite takes `?` placeholders as written.
    fn sql(text: &'static str) -> Cow<'static, str> {
        Cow::Borrowed(text)
    }

    fn sql_owned(text: String) -> String {
        text
    }

    /// Row locks: SQLite has one writer, whose transaction sees every
    /// committed row and nothing changes under it, so none are needed.
    fn for_update(_of: &str) -> &'static str {
        ""
    }

    fn read(&self) -> &SqlitePool {
        &self.read
    }

    fn write(&self) -> &SqlitePool {
        &self.write
    }

    /// One SQLite file has one server (the server locks the data directory),
    /// so that server always leads.
    async fn try_lead_impl(&self) -> Result<bool> {
        Ok(true)
    }

    async fn apply_round_impl(&self, round: &RoundWrite) -> Result<()> {
        let started = std::time::Instant::now();
        let mut tx = self.write.begin().await?;
        Self::place_set_wise(&mut tx, round).await?;
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

    /// The round's placements in one statement, then the shared writes for
    /// jobs, sites, events and explanations. One statement per placement
    /// would cost a round trip to SQLite's worker thread each, and a round
    /// may hold ten thousand placements. Same transitions as
    /// the lifecycle (pending → placed, a new attempt); the contract
    /// tests check both backends alike.
    async fn place_set_wise(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        round: &RoundWrite,
    ) -> Result<()> {
        if round.placements.is_empty() {
            return Self::write_whys(tx, &round.whys).await;
        }
        // Each placement takes the next `count` pending tasks of its job, in
        // index order. The pending tasks of the placed jobs are read inside
        // this (single-writer) transaction, matched to placements here, and
        // written back by primary key.
        let mut planned: std::collections::HashMap<(&str, &str), u64> =
            std::collections::HashMap::new();
        let mut by_job: std::collections::BTreeMap<&str, Vec<(&str, &str, u64)>> =
            std::collections::BTreeMap::new();
        for (job, pool, site, count) in &round.placements {
            assert!(*count > 0, "a placement places at least one task");
            *planned.entry((job.as_str(), pool.as_str())).or_insert(0) += count;
            by_job
                .entry(job.as_str())
                .or_default()
                .push((pool.as_str(), site.as_str(), *count));
        }
        let job_ids: Vec<&str> = by_job.keys().copied().collect();
        let mut pending: Vec<(String, i64)> = Vec::new();
        for chunk in job_ids.chunks(crate::shared::INSERT_ROWS_MAX) {
            let sql = format!(
                "SELECT job, idx FROM tasks WHERE state = 'pending' AND job IN ({}) ORDER BY job, idx",
                crate::shared::placeholders(chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
            for job in chunk {
                query = query.bind(*job);
            }
            pending.extend(query.fetch_all(&mut **tx).await?);
        }
        let mut assigned = Vec::with_capacity(pending.len());
        let mut k = 0;
        for (job, placements) in &by_job {
            while k < pending.len() && pending[k].0.as_str() < *job {
                k += 1;
            }
            for (pool, site, count) in placements {
                for _ in 0..*count {
                    if k < pending.len() && pending[k].0 == *job {
                        assigned.push((
                            (*job, *pool, *site),
                            serde_json::json!([job, pending[k].1, pool, site]),
                        ));
                        k += 1;
                    }
                }
            }
        }
        // The pending tasks were read in this transaction and SQLite has one
        // writer, so every one of them is updated; the count checks it.
        let mut updated_rows = 0u64;
        for chunk in assigned.chunks(ASSIGN_ROWS_MAX) {
            let rows =
                serde_json::Value::Array(chunk.iter().map(|(_, value)| value.clone()).collect())
                    .to_string();
            updated_rows += sqlx::query(
                "UPDATE tasks SET state = 'placed', attempt = attempt + 1, pool = p.pool, site = p.site, \
                     exit_code = NULL, reason = NULL, output_tail = NULL \
                 FROM (SELECT json_extract(value, '$[0]') AS job, json_extract(value, '$[1]') AS idx, \
                              json_extract(value, '$[2]') AS pool, json_extract(value, '$[3]') AS site \
                       FROM json_each(?)) AS p \
                 WHERE tasks.job = p.job AND tasks.idx = p.idx AND tasks.state = 'pending'",
            )
            .bind(rows)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        assert_eq!(
            updated_rows,
            assigned.len() as u64,
            "every pending task read in this transaction is placed"
        );
        let mut done: std::collections::BTreeMap<(&str, &str, &str), u64> =
            std::collections::BTreeMap::new();
        for ((job, pool, site), _) in &assigned {
            *done.entry((*job, *pool, *site)).or_insert(0) += 1;
        }
        let mut jobs: Vec<String> = Vec::new();
        let mut sites: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
        let mut events: Vec<(&str, String)> = Vec::with_capacity(done.len());
        for (&(job, pool, site), &count) in &done {
            // Fewer than planned means tasks were cancelled since the round
            // read them; never more.
            assert!(
                count <= planned.get(&(job, pool)).copied().unwrap_or(0),
                "a round placed more tasks than planned"
            );
            events.push((job, format!("{count} tasks on pool {pool} at site {site}")));
            if jobs.last().map(String::as_str) != Some(job) {
                jobs.push(job.to_owned());
            }
            sites.insert(site);
        }
        for chunk in events.chunks(crate::shared::INSERT_ROWS_MAX / 5) {
            let sql = format!(
                "INSERT INTO events (job, task, at_ms, kind, detail) VALUES {}",
                crate::shared::values(chunk.len(), 5)
            );
            let mut query = sqlx::query(&sql);
            for (job, detail) in chunk {
                query = query
                    .bind(*job)
                    .bind(None::<i64>)
                    .bind(round.at_ms)
                    .bind("placed")
                    .bind(detail);
            }
            query.execute(&mut **tx).await?;
        }
        for chunk in jobs.chunks(crate::shared::INSERT_ROWS_MAX) {
            let sql = format!(
                "UPDATE jobs SET state = 'placed', why = NULL WHERE state = 'pending' AND id IN ({})",
                crate::shared::placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for job in chunk {
                query = query.bind(job);
            }
            query.execute(&mut **tx).await?;
        }
        let sites: Vec<&str> = sites.into_iter().collect();
        for chunk in sites.chunks(crate::shared::INSERT_ROWS_MAX) {
            let sql = format!(
                "UPDATE sites SET version = version + 1 WHERE id IN ({})",
                crate::shared::placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for site in chunk {
                query = query.bind(*site);
            }
            query.execute(&mut **tx).await?;
        }
        // Last: a job placed only in part keeps the explanation of the rest.
        Self::write_whys(tx, &round.whys).await
    }

    /// The explanations of a round, one statement per chunk.
    async fn write_whys(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        whys: &[(String, Option<String>)],
    ) -> Result<()> {
        for chunk in whys.chunks(ASSIGN_ROWS_MAX) {
            let rows = serde_json::Value::Array(
                chunk
                    .iter()
                    .map(|(job, why)| serde_json::json!([job, why]))
                    .collect(),
            )
            .to_string();
            sqlx::query(
                "UPDATE jobs SET why = w.why \
                 FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS why FROM json_each(?)) AS w \
                 WHERE jobs.id = w.id",
            )
            .bind(rows)
            .execute(&mut **tx)
            .await?;
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

impl_store!(SqliteStore, "sqlite", sqlx::Sqlite);
