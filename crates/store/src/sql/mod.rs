//! The SQL both databases share, as plain generic functions over a
//! [`Backend`](crate::backend::Backend) and its [`Conn`]s, one module per
//! aggregate. The rules of jobs, tasks and leases are all in [`lifecycle`].
//!
//! Conventions both schemas follow: integers are 64-bit, booleans are 0/1
//! integers, times are milliseconds since the epoch, money is integer
//! micro-yuan. Sums are cast to BIGINT so both decode as i64. Every row is
//! read into a named struct; every stored state, kind, role, flag and
//! count is checked when read ([`known`], [`int`], [`flag`]): a value out of
//! its domain is [`StoreError::Corrupt`] naming the table, column and row.
//!
//! *No state, kind or role is written into SQL text by hand.* Lists such as
//! `state IN (...)` are generated from the enums ([`quoted`]; the
//! `LazyLock` statics), as literals rather than bind parameters so that the
//! migrations' partial indexes (`tasks_pending`, `tasks_active`,
//! `principals_role_name`) stay usable by the planner: the generated text
//! matches their predicates. `tests/it/boundary.rs` holds every file here
//! to it.

use std::fmt::{Debug, Display};
use std::sync::LazyLock;

use suanwang_core::lifecycle::{Counts, EventKind, JobState, TaskState};
use suanwang_core::spec::JobKind;

use crate::conn::Conn;
use crate::{Audit, NewToken, Result, Role, StoreError};

pub(crate) mod bills;
pub(crate) mod holds;
pub(crate) mod idempotency;
pub(crate) mod jobs;
pub(crate) mod ledger;
pub(crate) mod lifecycle;
pub(crate) mod market;
pub(crate) mod prices;
pub(crate) mod principals;
pub(crate) mod rounds;
pub(crate) mod sites;
pub(crate) mod usage;

/// Rows per multi-row INSERT: well under both databases' bind limits.
pub(crate) const INSERT_ROWS_MAX: usize = 500;

/// `?,?,?` for `n` values.
pub(crate) fn placeholders(n: usize) -> String {
    let mut text = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            text.push(',');
        }
        text.push('?');
    }
    text
}

/// `(?,?),(?,?)` for `rows` rows of `columns` values.
pub(crate) fn values(rows: usize, columns: usize) -> String {
    let row = format!("({})", placeholders(columns));
    let mut text = String::with_capacity(rows * (row.len() + 1));
    for i in 0..rows {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&row);
    }
    text
}

/// An enum of the domain stored as its name.
pub(crate) trait Stored: Copy + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

impl Stored for TaskState {
    const ALL: &'static [Self] = &TaskState::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Stored for JobState {
    const ALL: &'static [Self] = &JobState::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Stored for JobKind {
    const ALL: &'static [Self] = &JobKind::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Stored for EventKind {
    const ALL: &'static [Self] = &EventKind::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Stored for Role {
    const ALL: &'static [Self] = &Role::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// `values` as SQL string literals, comma-separated: `'a', 'b'` for the
/// names `a` and `b`.
pub(crate) fn quoted<T: Stored>(values: &[T]) -> String {
    values
        .iter()
        .map(|value| format!("'{}'", value.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The waiting task state, as in the index `tasks_pending`.
pub(crate) static PENDING: LazyLock<String> = LazyLock::new(|| quoted(&[TaskState::Pending]));

/// The task states that hold capacity, as in the index `tasks_active`.
pub(crate) static ACTIVE: LazyLock<String> = LazyLock::new(|| {
    let active: Vec<TaskState> = TaskState::ALL
        .into_iter()
        .filter(|state| state.holds_capacity())
        .collect();
    quoted(&active)
});

/// A row named for errors: `site s-1`, `job j-1`. Formatted only when an
/// error is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Named<'a>(pub &'static str, pub &'a str);

impl Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// A task row named for errors: `job j-1 task 3`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskOf<'a>(pub &'a str, pub i64);

impl Display for TaskOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {} task {}", self.0, self.1)
    }
}

/// A task row's record of its latest attempt's placement (migration
/// 0006): all five columns or none, as the round writes them.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PlacedColumns {
    placed_at_ms: Option<i64>,
    price_micro: Option<i64>,
    transfer_micro_per_gb: Option<i64>,
    bid_micro: Option<i64>,
    data_mb: Option<i64>,
}

impl PlacedColumns {
    pub(crate) fn read(&self, of: TaskOf<'_>) -> Result<Option<crate::PlacedAt>> {
        match (
            self.placed_at_ms,
            self.price_micro,
            self.transfer_micro_per_gb,
            self.bid_micro,
            self.data_mb,
        ) {
            (Some(at_ms), Some(price), Some(transfer), Some(bid), Some(data_mb)) => {
                Ok(Some(crate::PlacedAt {
                    at_ms,
                    price: suanwang_core::price::AttemptPrice {
                        price_micro_yuan_per_unit_hour: price,
                        transfer_micro_yuan_per_gb: transfer,
                        bid_micro_yuan_per_unit_hour: bid,
                        data_mb: int("tasks.data_mb", of, data_mb)?,
                    },
                }))
            }
            (None, None, None, None, None) => Ok(None),
            partial => Err(corrupt(
                "tasks.placed_at_ms, price_micro, transfer_micro_per_gb, bid_micro, data_mb",
                of,
                partial,
            )),
        }
    }
}

/// A stored value out of its domain.
pub(crate) fn corrupt(column: &str, row: impl Display, value: impl Debug) -> StoreError {
    StoreError::Corrupt(format!("{column} of {row} is {value:?}"))
}

/// The variant named `text`, stored in `column` of `row`.
pub(crate) fn known<T: Stored>(column: &str, row: impl Display, text: &str) -> Result<T> {
    T::ALL
        .iter()
        .copied()
        .find(|value| value.name() == text)
        .ok_or_else(|| corrupt(column, row, text))
}

/// A stored integer in the range of `T`.
pub(crate) fn int<T: TryFrom<i64>>(column: &str, row: impl Display, value: i64) -> Result<T> {
    T::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "{column} of {row} is {value}, out of range for {}",
            std::any::type_name::<T>()
        ))
    })
}

/// A stored 0/1 boolean.
pub(crate) fn flag(column: &str, row: impl Display, value: i64) -> Result<bool> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(StoreError::Corrupt(format!(
            "{column} of {row} is {other}, not 0 or 1"
        ))),
    }
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).expect("counts are bounded far below i64::MAX by validation")
}

/// A unique violation (a name, id or hash taken, possibly by a concurrent
/// writer that passed the same check) as [`StoreError::Conflict`].
pub(crate) fn unique_as_conflict<T>(result: Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    match result {
        Err(StoreError::Database(sqlx::Error::Database(error))) if error.is_unique_violation() => {
            Err(StoreError::Conflict(what()))
        }
        other => other,
    }
}

/// One column `n`: a count or a sum.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Count {
    pub n: i64,
}

/// One column `id`: whether a row exists.
#[derive(Debug, sqlx::FromRow)]
#[allow(dead_code, reason = "read to see that the row exists")]
pub(crate) struct Id {
    pub id: String,
}

/// One column `job`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobId {
    pub job: String,
}

/// A count per job.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobCount {
    pub job: String,
    pub n: i64,
}

/// A count per task state.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StateCount {
    pub state: String,
    pub n: i64,
}

/// The never-placed tasks of `job` (lazy task rows): every index from
/// `materialized` up to `tasks` is pending and has no row yet.
pub(crate) fn tail(job: &str, tasks: i64, materialized: i64) -> Result<i64> {
    if !(0..=tasks).contains(&materialized) {
        return Err(StoreError::Corrupt(format!(
            "jobs.tasks_materialized of job {job} is {materialized}, for {tasks} tasks"
        )));
    }
    Ok(tasks - materialized)
}

/// A job's task counts by state, rows and never-placed tail alike, in one
/// statement (one snapshot: a round in between cannot count a task twice).
/// Binds: the job id, twice.
pub(crate) static JOB_COUNTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT state, COUNT(*) AS n FROM tasks WHERE job = ? GROUP BY state \
         UNION ALL SELECT {}, tasks - tasks_materialized FROM jobs WHERE id = ? AND tasks_materialized < tasks",
        *PENDING
    )
});

/// The task counts of `job`, by [`JOB_COUNTS`].
pub(crate) async fn job_counts(conn: &mut impl Conn, job: &str) -> Result<Counts> {
    let parts: Vec<StateCount> = conn
        .fetch_all(&JOB_COUNTS, &[job.into(), job.into()])
        .await?;
    let mut counts = Counts::default();
    let of = Named("job", job);
    for part in parts {
        let state = known("tasks.state", of, &part.state)?;
        let n = int("count of tasks.state", of, part.n)?;
        counts.add(state, n);
    }
    Ok(counts)
}

/// The counts that are not zero, in `TaskState::ALL` order.
pub(crate) fn nonzero(counts: &Counts) -> Vec<(TaskState, u64)> {
    TaskState::ALL
        .into_iter()
        .map(|state| (state, counts.get(state)))
        .filter(|&(_, n)| n > 0)
        .collect()
}

pub(crate) async fn audit_in(conn: &mut impl Conn, audit: &Audit) -> Result<()> {
    conn.execute(
        "INSERT INTO audit (at_ms, principal, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        &[
            audit.at_ms.into(),
            (&audit.principal).into(),
            (&audit.action).into(),
            (&audit.target).into(),
            (&audit.detail).into(),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn token_in(conn: &mut impl Conn, token: &NewToken) -> Result<()> {
    conn.execute(
        "INSERT INTO tokens (id, principal, name, hash, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        &[
            (&token.id).into(),
            (&token.principal).into(),
            (&token.name).into(),
            (&token.hash).into(),
            token.created_at_ms.into(),
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every migration of both databases, as one text.
    fn migrations() -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut text = String::new();
        for backend in ["sqlite", "postgres"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(backend))
                .expect("migrations")
                .map(|entry| entry.expect("entry").path())
                .collect();
            files.sort();
            for file in files {
                text.push_str(&std::fs::read_to_string(file).expect("migration"));
            }
        }
        text
    }

    /// The partial indexes' predicates are what the store's statements
    /// say, so the planner can use them.
    #[test]
    fn generated_lists_match_the_partial_indexes() {
        let schema = migrations();
        for predicate in [
            format!("tasks(job) WHERE state = {};", *PENDING),
            format!("tasks(site) WHERE state IN ({});", *ACTIVE),
            format!(
                "principals(role, name) WHERE role <> {};",
                quoted(&[Role::Site])
            ),
        ] {
            assert_eq!(
                schema.matches(&predicate).count(),
                2,
                "{predicate} in both schemas"
            );
        }
    }

    #[test]
    fn lists_are_quoted_and_ordered_as_the_enums() {
        let placed_running = TaskState::ALL[1..3].to_vec();
        assert_eq!(*ACTIVE, quoted(&placed_running));
        assert_eq!(
            quoted(&placed_running),
            format!(
                "'{}', '{}'",
                TaskState::Placed.as_str(),
                TaskState::Running.as_str()
            )
        );
        assert_eq!(
            known::<JobKind>("jobs.kind", Named("job", "j-1"), "odd")
                .unwrap_err()
                .to_string(),
            r#"corrupt: jobs.kind of job j-1 is "odd""#
        );
        assert_eq!(
            int::<u32>("tasks.attempt", TaskOf("j-1", 3), -1)
                .unwrap_err()
                .to_string(),
            "corrupt: tasks.attempt of job j-1 task 3 is -1, out of range for u32"
        );
    }
}
