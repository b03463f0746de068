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
            .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
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
        let mut tx = self.write.begin().await?;
        Self::apply_round_in(&mut tx, round).await?;
        tx.commit().await?;
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
