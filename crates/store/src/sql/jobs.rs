//! Jobs: submissions (group commit) and what a job shows: its row, tasks,
//! events. Cancelling is a rule of the lifecycle
//! ([`lifecycle::cancel`](super::lifecycle::cancel)).

use suanwang_core::lifecycle::{EventKind, JobState};

use crate::backend::Backend;
use crate::conn::{Arg, Conn, Tx};
use crate::sql::{
    flag, idempotency, int, job_counts, known, nonzero, values, Named, PlacedColumns, StateCount,
    TaskOf, INSERT_ROWS_MAX,
};
use crate::{EventRow, IdemOutcome, JobRow, NewJob, Result, TaskRow};

/// Inserts the jobs (one row each, whatever their task count: lazy task
/// rows) with their idempotency, audit and `submitted` event rows, in
/// multi-row INSERTs, one transaction.
pub(crate) async fn submit_batch(
    store: &impl Backend,
    jobs: &[NewJob],
) -> Result<Vec<IdemOutcome>> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut inserted: Vec<&NewJob> = Vec::with_capacity(jobs.len());
    let claims = idempotency::claim_batch(&mut tx, jobs).await?;
    for (job, claim) in jobs.iter().zip(claims) {
        if let Some(outcome) = claim {
            outcomes.push(outcome);
            continue;
        }
        outcomes.push(IdemOutcome::Done);
        inserted.push(job);
    }
    for chunk in inserted.chunks(INSERT_ROWS_MAX / 2) {
        let sql = format!(
            "INSERT INTO jobs (id, tenant, name, spec, state, tasks, units, retries, kind, \
             cancel_requested, created_at_ms) VALUES {}",
            values(chunk.len(), 11)
        );
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 11);
        for job in chunk {
            args.extend([
                (&job.id).into(),
                (&job.tenant).into(),
                (&job.name).into(),
                (&job.spec).into(),
                JobState::Pending.as_str().into(),
                job.tasks.into(),
                job.units.into(),
                job.retries.into(),
                job.kind.as_str().into(),
                0i64.into(),
                job.created_at_ms.into(),
            ]);
        }
        tx.execute(&sql, &args).await?;
        let sql = format!(
            "INSERT INTO audit (at_ms, principal, action, target, detail) VALUES {}",
            values(chunk.len(), 5)
        );
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 5);
        for job in chunk {
            args.extend([
                job.audit.at_ms.into(),
                (&job.audit.principal).into(),
                (&job.audit.action).into(),
                (&job.audit.target).into(),
                (&job.audit.detail).into(),
            ]);
        }
        tx.execute(&sql, &args).await?;
        let sql = format!(
            "INSERT INTO events (job, task, at_ms, kind, detail) VALUES {}",
            values(chunk.len(), 5)
        );
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 5);
        for job in chunk {
            args.extend([
                (&job.id).into(),
                None::<i64>.into(),
                job.created_at_ms.into(),
                EventKind::Submitted.as_str().into(),
                format!("{} tasks", job.tasks).into(),
            ]);
        }
        tx.execute(&sql, &args).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// A `jobs` row as the job queries select it ([`JOB_COLUMNS`]).
#[derive(Debug, sqlx::FromRow)]
struct JobSelect {
    id: String,
    tenant: String,
    name: String,
    spec: String,
    state: String,
    tasks: i64,
    cancel_requested: i64,
    created_at_ms: i64,
    why: Option<String>,
}

const JOB_COLUMNS: &str =
    "id, tenant, name, spec, state, tasks, cancel_requested, created_at_ms, why";

/// The job row with its task counts (read after it, on the same reader).
async fn job_row(conn: &mut impl Conn, row: JobSelect) -> Result<JobRow> {
    let counts = job_counts(conn, &row.id).await?;
    let of = Named("job", &row.id);
    Ok(JobRow {
        state: known("jobs.state", of, &row.state)?,
        tasks: int("jobs.tasks", of, row.tasks)?,
        cancel_requested: flag("jobs.cancel_requested", of, row.cancel_requested)?,
        counts: nonzero(&counts),
        id: row.id,
        tenant: row.tenant,
        name: row.name,
        spec: row.spec,
        created_at_ms: row.created_at_ms,
        why: row.why,
    })
}

pub(crate) async fn job(store: &impl Backend, id: &str) -> Result<Option<JobRow>> {
    let mut reader = store.reader();
    let row: Option<JobSelect> = reader
        .fetch_optional(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"),
            &[id.into()],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(job_row(&mut reader, row).await?)),
    }
}

pub(crate) async fn jobs(
    store: &impl Backend,
    tenant: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<JobRow>> {
    let mut reader = store.reader();
    let rows: Vec<JobSelect> = reader
        .fetch_all(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs \
                 WHERE (? IS NULL OR tenant = ?) AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?"
            ),
            &[
                tenant.into(),
                tenant.into(),
                after.into(),
                after.into(),
                limit.into(),
            ],
        )
        .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        jobs.push(job_row(&mut reader, row).await?);
    }
    Ok(jobs)
}

#[derive(Debug, sqlx::FromRow)]
struct TaskSelect {
    idx: i64,
    state: String,
    attempt: i64,
    pool: Option<String>,
    site: Option<String>,
    exit_code: Option<i64>,
    reason: Option<String>,
    site_name: Option<String>,
    site_region: Option<String>,
    pool_name: Option<String>,
    #[sqlx(flatten)]
    placed: PlacedColumns,
}

#[derive(Debug, sqlx::FromRow)]
struct Tasks {
    tasks: i64,
}

/// A page of `job`'s tasks in index order: its rows, then never-placed
/// tasks (they have no row) up to the page's end.
pub(crate) async fn tasks(
    store: &impl Backend,
    job: &str,
    after: Option<u64>,
    limit: u32,
) -> Result<Vec<TaskRow>> {
    let mut reader = store.reader();
    let first = after.map_or(0, |after| after.saturating_add(1));
    let rows: Vec<TaskSelect> = reader
        .fetch_all(
            "SELECT t.idx, t.state, t.attempt, t.pool, t.site, t.exit_code, t.reason, \
             s.name AS site_name, s.region AS site_region, p.name AS pool_name, \
             t.placed_at_ms, t.price_micro, t.transfer_micro_per_gb, t.bid_micro, t.data_mb \
             FROM tasks t LEFT JOIN sites s ON s.id = t.site LEFT JOIN pools p ON p.id = t.pool \
             WHERE t.job = ? AND t.idx >= ? ORDER BY t.idx LIMIT ?",
            &[
                job.into(),
                i64::try_from(first).unwrap_or(i64::MAX).into(),
                limit.into(),
            ],
        )
        .await?;
    // Rows exist for a prefix of the indexes; the rest are never placed. A
    // round between the two reads only adds rows this read did not see,
    // listed as never placed a moment longer.
    let total: Option<Tasks> = reader
        .fetch_optional("SELECT tasks FROM jobs WHERE id = ?", &[job.into()])
        .await?;
    let mut tasks = rows
        .into_iter()
        .map(|row| {
            let of = TaskOf(job, row.idx);
            let placed = row.placed.read(of)?;
            Ok(TaskRow {
                placed,
                index: int("tasks.idx", of, row.idx)?,
                state: known("tasks.state", of, &row.state)?,
                attempt: int("tasks.attempt", of, row.attempt)?,
                exit_code: row
                    .exit_code
                    .map(|code| int("tasks.exit_code", of, code))
                    .transpose()?,
                pool: row.pool,
                site: row.site,
                reason: row.reason,
                site_name: row.site_name,
                site_region: row.site_region,
                pool_name: row.pool_name,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(total) = total {
        let first_new = tasks.last().map_or(first, |t| t.index + 1);
        let room = u64::from(limit).saturating_sub(tasks.len() as u64);
        let total: u64 = int("jobs.tasks", Named("job", job), total.tasks)?;
        let end = total.min(first_new.saturating_add(room));
        tasks.extend((first_new..end).map(TaskRow::never_placed));
    }
    Ok(tasks)
}

#[derive(Debug, sqlx::FromRow)]
struct EventSelect {
    seq: i64,
    job: String,
    task: Option<i64>,
    at_ms: i64,
    kind: String,
    detail: String,
}

pub(crate) async fn events(
    store: &impl Backend,
    job: &str,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<EventRow>> {
    let rows: Vec<EventSelect> = store
        .reader()
        .fetch_all(
            "SELECT seq, job, task, at_ms, kind, detail FROM events \
             WHERE job = ? AND seq > ? ORDER BY seq LIMIT ?",
            &[job.into(), after_seq.into(), limit.into()],
        )
        .await?;
    rows.into_iter()
        .map(|row| {
            let of = EventOf(row.seq);
            Ok(EventRow {
                task: row
                    .task
                    .map(|task| int("events.task", of, task))
                    .transpose()?,
                kind: known("events.kind", of, &row.kind)?,
                seq: row.seq,
                job: row.job,
                at_ms: row.at_ms,
                detail: row.detail,
            })
        })
        .collect()
}

/// An event named for errors.
#[derive(Clone, Copy, Debug)]
struct EventOf(i64);

impl std::fmt::Display for EventOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event {}", self.0)
    }
}

/// Jobs per state, in `JobState::ALL` order.
pub(crate) async fn job_states(store: &impl Backend) -> Result<Vec<(JobState, u64)>> {
    let rows: Vec<StateCount> = store
        .reader()
        .fetch_all(
            "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state",
            &[],
        )
        .await?;
    let mut states = rows
        .into_iter()
        .map(|row| {
            let state = known("jobs.state", "a job", &row.state)?;
            Ok((state, int("count of jobs", row.state, row.n)?))
        })
        .collect::<Result<Vec<_>>>()?;
    states.sort();
    Ok(states)
}
