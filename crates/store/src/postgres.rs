//! The PostgreSQL store, for deployments with several `serve` processes.
//! Scheduling leadership is a session advisory lock held on one dedicated
//! connection; the round's writes run on that same connection, so a process
//! that lost the lock (its connection died) cannot write a round.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Mutex;

use crate::shared::impl_store;
use crate::{Result, RoundWrite, StoreError};

pub const CONNECTIONS_MAX: u32 = 16;
/// The advisory lock key of the scheduling leader ("suanwang" in ASCII, folded).
pub const LEADER_LOCK_KEY: i64 = 0x7375_616e_7761_6e67;

pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
    leader: Mutex<Option<PgConnection>>,
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
        })
    }

    /// Rewrites `?` placeholders as PostgreSQL's `$1, $2, ...`. The shared
    /// SQL never has `?` inside a string literal.
    fn sql(text: &'static str) -> Cow<'static, str> {
        Cow::Owned(Self::sql_owned(text.to_owned()))
    }

    fn sql_owned(text: String) -> String {
        if !text.contains('?') {
            return text;
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut n = 0;
        for c in text.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Locks the rows a read-then-write transaction decides on (of the
    /// table `of` in a join), so that a concurrent writer waits instead of
    /// being overwritten with a decision made on stale rows.
    fn for_update(of: &str) -> String {
        format!(" FOR UPDATE OF {of}")
    }

    fn read(&self) -> &PgPool {
        &self.pool
    }

    fn write(&self) -> &PgPool {
        &self.pool
    }

    async fn try_lead_impl(&self) -> Result<bool> {
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
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
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

    async fn apply_round_impl(&self, round: &RoundWrite) -> Result<()> {
        let mut leader = self.leader.lock().await;
        let Some(connection) = leader.as_mut() else {
            return Err(StoreError::NotLeader);
        };
        let mut tx = connection.begin().await?;
        Self::apply_round_set_wise(&mut tx, round).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The round's writes as a handful of set-wise statements: a round may
    /// place 100,000 tasks, and one statement per placement would spend its
    /// time in round trips. Same transitions as the lifecycle (pending →
    /// placed, a new attempt), checked by the same contract tests.
    async fn apply_round_set_wise(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        round: &RoundWrite,
    ) -> Result<()> {
        let mut jobs: Vec<&str> = Vec::with_capacity(round.placements.len());
        let mut pools: Vec<&str> = Vec::with_capacity(round.placements.len());
        let mut sites: Vec<&str> = Vec::with_capacity(round.placements.len());
        let mut lows: Vec<i64> = Vec::with_capacity(round.placements.len());
        let mut highs: Vec<i64> = Vec::with_capacity(round.placements.len());
        // Each placement takes the next `count` pending tasks of its job, in
        // index order: [low, high) in the job's pending rank.
        let mut placed_before: std::collections::HashMap<&str, i64> =
            std::collections::HashMap::new();
        for (job, pool, site, count) in &round.placements {
            assert!(*count > 0, "a placement places at least one task");
            let low = placed_before.entry(job.as_str()).or_insert(0);
            let count = i64::try_from(*count).expect("counts are bounded");
            jobs.push(job);
            pools.push(pool);
            sites.push(site);
            lows.push(*low);
            highs.push(*low + count);
            *low += count;
        }
        if !jobs.is_empty() {
            let placed: Vec<(String, String, String, i64)> = sqlx::query_as(
                "WITH a AS ( \
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS a(job, pool, site, low, high) \
                 ), r AS ( \
                     SELECT t.job, t.idx, row_number() OVER (PARTITION BY t.job ORDER BY t.idx) - 1 AS rank \
                     FROM tasks t WHERE t.state = 'pending' AND t.job IN (SELECT DISTINCT job FROM a) \
                 ), u AS ( \
                     UPDATE tasks t SET state = 'placed', attempt = t.attempt + 1, pool = a.pool, site = a.site, \
                         exit_code = NULL, reason = NULL, output_tail = NULL \
                     FROM r JOIN a ON a.job = r.job AND r.rank >= a.low AND r.rank < a.high \
                     WHERE t.job = r.job AND t.idx = r.idx AND t.state = 'pending' \
                     RETURNING a.job, a.pool, a.site \
                 ) \
                 SELECT job, pool, site, COUNT(*) FROM u GROUP BY job, pool, site ORDER BY job, pool",
            )
            .bind(&jobs)
            .bind(&pools)
            .bind(&sites)
            .bind(&lows)
            .bind(&highs)
            .fetch_all(&mut **tx)
            .await?;
            let mut planned: std::collections::HashMap<(&str, &str), i64> =
                std::collections::HashMap::new();
            for (job, pool, _, count) in &round.placements {
                *planned.entry((job.as_str(), pool.as_str())).or_insert(0) +=
                    i64::try_from(*count).expect("bounded");
            }
            let mut event_jobs: Vec<&str> = Vec::with_capacity(placed.len());
            let mut details: Vec<String> = Vec::with_capacity(placed.len());
            let mut placed_jobs: Vec<&str> = Vec::with_capacity(placed.len());
            let mut placed_sites: Vec<&str> = Vec::with_capacity(placed.len());
            for (job, pool, site, count) in &placed {
                // Fewer than planned means tasks were cancelled since the
                // round read them; never more.
                let planned = planned
                    .get(&(job.as_str(), pool.as_str()))
                    .copied()
                    .unwrap_or(0);
                assert!(*count <= planned, "a round placed more tasks than planned");
                event_jobs.push(job);
                details.push(format!("{count} tasks on pool {pool} at site {site}"));
                if placed_jobs.last() != Some(&job.as_str()) {
                    placed_jobs.push(job);
                }
                placed_sites.push(site);
            }
            placed_sites.sort_unstable();
            placed_sites.dedup();
            sqlx::query(
                "INSERT INTO events (job, task, at_ms, kind, detail) \
                 SELECT job, NULL, $3, 'placed', detail FROM unnest($1::text[], $2::text[]) AS e(job, detail)",
            )
            .bind(&event_jobs)
            .bind(&details)
            .bind(round.at_ms)
            .execute(&mut **tx)
            .await?;
            sqlx::query("UPDATE jobs SET state = 'placed', why = NULL WHERE state = 'pending' AND id = ANY($1)")
                .bind(&placed_jobs)
                .execute(&mut **tx)
                .await?;
            sqlx::query("UPDATE sites SET version = version + 1 WHERE id = ANY($1)")
                .bind(&placed_sites)
                .execute(&mut **tx)
                .await?;
        }
        if !round.whys.is_empty() {
            let why_jobs: Vec<&str> = round.whys.iter().map(|(job, _)| job.as_str()).collect();
            let whys: Vec<Option<&str>> =
                round.whys.iter().map(|(_, why)| why.as_deref()).collect();
            sqlx::query(
                "UPDATE jobs SET why = w.why FROM unnest($1::text[], $2::text[]) AS w(job, why) WHERE jobs.id = w.job",
            )
            .bind(&why_jobs)
            .bind(&whys)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

impl_store!(PgStore, "postgres", sqlx::Postgres);
