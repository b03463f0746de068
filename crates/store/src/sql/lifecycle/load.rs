//! Loading the machine's [`View`]: typed rows, every stored value checked
//! ([`known`], [`int`], [`flag`]: a value out of its domain is an error
//! naming the table, column and row).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use suanwang_core::lifecycle::{Counts, TaskState};
use suanwang_core::machine::{AttemptAt, Job, Site, TaskKey, TaskNow, UsageKey, View};
use suanwang_core::spec::JobKind;

use crate::conn::{Arg, Conn};
use crate::sql::{
    flag, int, job_counts, known, placeholders, quoted, tail, values, JobId, Named, TaskOf, ACTIVE,
    INSERT_ROWS_MAX, PENDING,
};
use crate::Result;

/// A `jobs` row as the machine sees it.
#[derive(Debug, sqlx::FromRow)]
struct JobSelect {
    id: String,
    kind: String,
    retries: i64,
    tasks: i64,
    tasks_materialized: i64,
    units: i64,
    cancel_requested: i64,
    state: String,
}

/// Loads the jobs `ids` (sorted, distinct), locked in id order when `lock`
/// (the first step of every writer: the lock order), with their task counts
/// when `counts` (else zero counts: only for a caller whose function
/// changes none of their tasks — the machine's postconditions would catch
/// one that did). Jobs that do not exist are left out.
pub(crate) async fn jobs(
    conn: &mut impl Conn,
    ids: &[&str],
    lock: bool,
    counts: bool,
) -> Result<BTreeMap<String, Job>> {
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "job ids sorted and distinct"
    );
    let lock = if lock {
        conn.for_update("jobs")
    } else {
        String::new()
    };
    let mut jobs = BTreeMap::new();
    for chunk in ids.chunks(INSERT_ROWS_MAX) {
        let sql = format!(
            "SELECT id, kind, retries, tasks, tasks_materialized, units, cancel_requested, state \
             FROM jobs WHERE id IN ({}) ORDER BY id{lock}",
            placeholders(chunk.len())
        );
        let args: Vec<Arg<'_>> = chunk.iter().map(|id| (*id).into()).collect();
        let rows: Vec<JobSelect> = conn.fetch_all(&sql, &args).await?;
        for row in rows {
            let of = Named("job", &row.id);
            tail(&row.id, row.tasks, row.tasks_materialized)?;
            let job = Job {
                kind: known::<JobKind>("jobs.kind", of, &row.kind)?,
                retries: int("jobs.retries", of, row.retries)?,
                tasks: int("jobs.tasks", of, row.tasks)?,
                materialized: int("jobs.tasks_materialized", of, row.tasks_materialized)?,
                units: int("jobs.units", of, row.units)?,
                cancel_requested: flag("jobs.cancel_requested", of, row.cancel_requested)?,
                state: known("jobs.state", of, &row.state)?,
                counts: Counts::default(),
            };
            jobs.insert(row.id, job);
        }
    }
    if counts {
        for (id, job) in &mut jobs {
            job.counts = job_counts(conn, id).await?;
            if job.counts.total() != job.tasks {
                return Err(crate::StoreError::Corrupt(format!(
                    "job {id} counts {} tasks in rows and tail, for {} tasks",
                    job.counts.total(),
                    job.tasks
                )));
            }
        }
    }
    Ok(jobs)
}

/// A `tasks` row as the machine sees it.
#[derive(Debug, sqlx::FromRow)]
struct TaskSelect {
    job: String,
    idx: i64,
    state: String,
    attempt: i64,
    site: Option<String>,
    pool: Option<String>,
    placed_at_ms: Option<i64>,
}

const TASK_COLUMNS: &str = "job, idx, state, attempt, site, pool, placed_at_ms";

fn task_of(row: TaskSelect) -> Result<(TaskKey, TaskNow)> {
    let of = TaskOf(&row.job, row.idx);
    let task = TaskNow {
        state: known("tasks.state", of, &row.state)?,
        attempt: int("tasks.attempt", of, row.attempt)?,
        site: row.site,
        pool: row.pool,
        placed_at_ms: row.placed_at_ms,
    };
    let idx = int("tasks.idx", of, row.idx)?;
    Ok(((row.job, idx), task))
}

/// The rows of the tasks `keys` that have one, locked when `lock` (their
/// jobs must be locked first).
pub(crate) async fn tasks(
    conn: &mut impl Conn,
    keys: &BTreeSet<(&str, u64)>,
    lock: bool,
) -> Result<BTreeMap<TaskKey, TaskNow>> {
    let lock = if lock {
        conn.for_update("tasks")
    } else {
        String::new()
    };
    let mut by_job: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for &(job, idx) in keys {
        by_job.entry(job).or_default().push(idx);
    }
    let mut out = BTreeMap::new();
    for (job, indexes) in by_job {
        for chunk in indexes.chunks(INSERT_ROWS_MAX) {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE job = ? AND idx IN ({}) ORDER BY idx{lock}",
                placeholders(chunk.len())
            );
            let mut args: Vec<Arg<'_>> = vec![job.into()];
            args.extend(chunk.iter().map(|idx| Arg::from(*idx)));
            let rows: Vec<TaskSelect> = conn.fetch_all(&sql, &args).await?;
            for row in rows {
                let (key, task) = task_of(row)?;
                out.insert(key, task);
            }
        }
    }
    Ok(out)
}

/// The rows of `job` in `states`, locked (the job must be locked first).
pub(crate) async fn tasks_in(
    conn: &mut impl Conn,
    job: &str,
    states: &[TaskState],
) -> Result<BTreeMap<TaskKey, TaskNow>> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE job = ? AND state IN ({}) ORDER BY idx{}",
        quoted(states),
        conn.for_update("tasks")
    );
    let rows: Vec<TaskSelect> = conn.fetch_all(&sql, &[job.into()]).await?;
    rows.into_iter().map(task_of).collect()
}

/// For each gang in the view, every placed and running row, locked: what a
/// gang's members follow.
pub(crate) async fn gang_members(conn: &mut impl Conn, view: &mut View) -> Result<()> {
    let gangs: Vec<String> = view
        .jobs
        .iter()
        .filter(|(_, job)| job.kind == JobKind::Gang)
        .map(|(id, _)| id.clone())
        .collect();
    for gang in gangs {
        let rows = tasks_in(conn, &gang, &[TaskState::Placed, TaskState::Running]).await?;
        for (key, task) in rows {
            view.tasks.entry(key).or_insert(task);
        }
    }
    Ok(())
}

static ACTIVE_ON_SITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE site = ? AND state IN ({}) ORDER BY job, idx",
        *ACTIVE
    )
});

/// The placed and running rows on `site`, locked (their jobs first).
pub(crate) async fn active_on_site(
    conn: &mut impl Conn,
    site: &str,
) -> Result<BTreeMap<TaskKey, TaskNow>> {
    let sql = format!("{}{}", *ACTIVE_ON_SITE, conn.for_update("tasks"));
    let rows: Vec<TaskSelect> = conn.fetch_all(&sql, &[site.into()]).await?;
    rows.into_iter().map(task_of).collect()
}

static JOBS_ON_SITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT DISTINCT job FROM tasks WHERE site = ? AND state IN ({})",
        *ACTIVE
    )
});

/// The jobs with placed or running tasks on `sites`, sorted: what a lease
/// lapse locks first.
pub(crate) async fn jobs_on_sites(conn: &mut impl Conn, sites: &[String]) -> Result<Vec<String>> {
    let mut jobs = BTreeSet::new();
    for site in sites {
        let rows: Vec<JobId> = conn.fetch_all(&JOBS_ON_SITE, &[site.into()]).await?;
        jobs.extend(rows.into_iter().map(|row| row.job));
    }
    Ok(jobs.into_iter().collect())
}

#[derive(Debug, sqlx::FromRow)]
struct SiteSelect {
    id: String,
    healthy: i64,
    lease_expires_at_ms: Option<i64>,
}

/// Every healthy site with its lease: what a lease check decides on.
pub(crate) async fn healthy_sites(conn: &mut impl Conn) -> Result<BTreeMap<String, Site>> {
    let rows: Vec<SiteSelect> = conn
        .fetch_all(
            "SELECT id, healthy, lease_expires_at_ms FROM sites WHERE healthy = 1 ORDER BY id",
            &[],
        )
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.id.clone(), site_of(row)?)))
        .collect()
}

/// The sites `ids` (sorted, distinct), locked in id order, with their
/// leases: the last step of the lock order.
pub(crate) async fn lock_sites(
    conn: &mut impl Conn,
    ids: &[String],
) -> Result<BTreeMap<String, Site>> {
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "site ids sorted and distinct"
    );
    let lock = conn.for_update("sites");
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(INSERT_ROWS_MAX) {
        let sql = format!(
            "SELECT id, healthy, lease_expires_at_ms FROM sites WHERE id IN ({}) ORDER BY id{lock}",
            placeholders(chunk.len())
        );
        let args: Vec<Arg<'_>> = chunk.iter().map(|id| id.into()).collect();
        let rows: Vec<SiteSelect> = conn.fetch_all(&sql, &args).await?;
        for row in rows {
            out.insert(row.id.clone(), site_of(row)?);
        }
    }
    Ok(out)
}

fn site_of(row: SiteSelect) -> Result<Site> {
    Ok(Site {
        healthy: flag("sites.healthy", Named("site", &row.id), row.healthy)?,
        lease_expires_at_ms: row.lease_expires_at_ms,
    })
}

#[derive(Debug, sqlx::FromRow)]
struct PendingRow {
    job: String,
    idx: i64,
    attempt: i64,
}

/// The pending rows of `jobs` (sorted) with their attempts, by job in
/// index order: what a round places first.
pub(crate) async fn pending_rows(
    conn: &mut impl Conn,
    jobs: &[&str],
) -> Result<BTreeMap<String, Vec<(u64, u32)>>> {
    let mut pending: BTreeMap<String, Vec<(u64, u32)>> = BTreeMap::new();
    for chunk in jobs.chunks(INSERT_ROWS_MAX) {
        let args: Vec<Arg<'_>> = chunk.iter().map(|id| (*id).into()).collect();
        let sql = format!(
            "SELECT job, idx, attempt FROM tasks WHERE state = {} AND job IN ({}) ORDER BY job, idx",
            *PENDING,
            placeholders(chunk.len())
        );
        let rows: Vec<PendingRow> = conn.fetch_all(&sql, &args).await?;
        for row in rows {
            let of = TaskOf(&row.job, row.idx);
            let idx = int("tasks.idx", of, row.idx)?;
            let attempt = int("tasks.attempt", of, row.attempt)?;
            pending.entry(row.job).or_default().push((idx, attempt));
        }
    }
    Ok(pending)
}

#[derive(Debug, sqlx::FromRow)]
struct UsageStored {
    job: String,
    task: i64,
    attempt: i64,
    seq: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct WallStored {
    job: String,
    task: i64,
    attempt: i64,
    wall_ms: i64,
}

/// What a report's usage records of `site` are decided on besides their
/// tasks: which of their keys are stored already, and the wall time stored
/// per attempt they name (`View::usage`, `View::usage_wall_ms`). Set-wise:
/// two statements per 500 records, answered from the primary key. The
/// records' jobs must be locked first, so that a concurrent report of the
/// same attempt waits and then sees what this one stored.
pub(crate) async fn usage_stored(
    conn: &mut impl Conn,
    site: &str,
    records: &[(&str, u64, u32, u32)],
    view: &mut View,
) -> Result<()> {
    let mut keys: Vec<(&str, u64, u32, u32)> = records.to_vec();
    keys.sort_unstable();
    keys.dedup();
    for chunk in keys.chunks(INSERT_ROWS_MAX) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 5);
        for &(job, task, attempt, seq) in chunk {
            args.extend([
                site.into(),
                job.into(),
                task.into(),
                attempt.into(),
                seq.into(),
            ]);
        }
        let rows: Vec<UsageStored> = conn
            .fetch_all(
                &format!(
                    "SELECT job, task, attempt, seq FROM usage \
                     WHERE (site, job, task, attempt, seq) IN (VALUES {})",
                    values(chunk.len(), 5)
                ),
                &args,
            )
            .await?;
        for row in rows {
            let of = TaskOf(&row.job, row.task);
            let key: UsageKey = (
                site.to_owned(),
                row.job.clone(),
                int("usage.task", of, row.task)?,
                int("usage.attempt", of, row.attempt)?,
                int("usage.seq", of, row.seq)?,
            );
            view.usage.insert(key);
        }
    }
    let mut attempts: Vec<(&str, u64, u32)> = keys
        .iter()
        .map(|&(job, task, attempt, _)| (job, task, attempt))
        .collect();
    attempts.dedup();
    for chunk in attempts.chunks(INSERT_ROWS_MAX) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 4);
        for &(job, task, attempt) in chunk {
            args.extend([site.into(), job.into(), task.into(), attempt.into()]);
        }
        let rows: Vec<WallStored> = conn
            .fetch_all(
                &format!(
                    "SELECT job, task, attempt, CAST(SUM(wall_ms) AS BIGINT) AS wall_ms FROM usage \
                     WHERE (site, job, task, attempt) IN (VALUES {}) GROUP BY job, task, attempt",
                    values(chunk.len(), 4)
                ),
                &args,
            )
            .await?;
        for row in rows {
            let of = TaskOf(&row.job, row.task);
            let attempt: AttemptAt = (
                site.to_owned(),
                row.job.clone(),
                int("usage.task", of, row.task)?,
                int("usage.attempt", of, row.attempt)?,
            );
            view.usage_wall_ms
                .insert(attempt, int("usage.wall_ms", of, row.wall_ms)?);
        }
    }
    Ok(())
}
