//! A site's report: the statuses of its attempts and their usage records.

use std::collections::{BTreeMap, BTreeSet};

use super::{AttemptAt, Changes, Outcome, TaskNow, UsageKey, View, Work};
use crate::lifecycle::{EventKind, ReportedState, TaskEvent, TaskState};
use crate::spec::JobKind;

/// A site says how one of its attempts is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub state: ReportedState,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub output_tail: Option<String>,
}

/// Which attempt a usage record is of, its pool and what it claims: what
/// decides whether it is taken (the store keeps the rest of the record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub pool: String,
    /// Units held; must be the job's units per task.
    pub units: u64,
    /// Wall time this record covers, as the agent measured it.
    pub wall_ms: u64,
}

/// The fixed part of the slack an attempt's wall time gets beyond the
/// window the server saw, from the round that placed the attempt to the
/// report that carries the record.
///
/// *Rationale.* The check is there to catch gross errors — a wall clock
/// stepped during an attempt, records counted twice, a record of another
/// attempt — which are minutes to hours; a rejected record is final, so a
/// false rejection loses the provider real work. The two ends of the window
/// are read from the control plane's wall clocks (the placement on the
/// leader's, the report on whichever replica's takes it), so replicas' skew
/// falls into it, and the agent's measure is coarse: Slurm counts whole
/// seconds on its controller's clock, the process executor 10 ms kernel
/// ticks. A minute covers these with room, and bounds what a site can claim
/// beyond what the server saw to one unit-minute per attempt, whatever its
/// length.
pub const WINDOW_SLACK_MS: u64 = 60_000;

/// The proportional part of the slack, in parts per thousand of the window.
///
/// *Rationale.* The agent measures with a monotonic clock, whose rate may
/// differ from the server's wall clock (a crystal off by up to 100 ppm, a
/// clock NTP slews by up to 500 ppm): 1 ‰ covers both for an attempt of any
/// length, and lets a site claim at most 0.1 % more than the window.
pub const WINDOW_SLACK_PER_MILLE: u64 = 1;

/// The most wall time an attempt placed at `placed_at_ms` may have in all
/// by a report at `now_ms`: the window plus its slack.
pub fn wall_ms_max(placed_at_ms: i64, now_ms: i64) -> u64 {
    let window = u64::try_from(now_ms.saturating_sub(placed_at_ms)).unwrap_or(0);
    window.saturating_add(WINDOW_SLACK_MS).saturating_add(
        window
            .div_ceil(1_000)
            .saturating_mul(WINDOW_SLACK_PER_MILLE),
    )
}

/// Why a usage record is rejected: a small fixed set, what `/metrics`
/// counts by (the reason's text, with its numbers, goes to the site).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UsageRejection {
    /// Not the reporting site's current attempt of the task.
    NotCurrent,
    /// Not the attempt's pool.
    Pool,
    /// Not the job's units per task.
    Units,
    /// More wall time than the attempt's window holds.
    Window,
}

impl UsageRejection {
    pub const ALL: [UsageRejection; 4] = [
        UsageRejection::NotCurrent,
        UsageRejection::Pool,
        UsageRejection::Units,
        UsageRejection::Window,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageRejection::NotCurrent => "not_current",
            UsageRejection::Pool => "pool",
            UsageRejection::Units => "units",
            UsageRejection::Window => "window",
        }
    }

    /// The first word of every reason of this kind that this module writes.
    fn lead(self) -> &'static str {
        match self {
            UsageRejection::NotCurrent => "attempt ",
            UsageRejection::Pool => "pool ",
            UsageRejection::Units => "units ",
            UsageRejection::Window => "wall_ms ",
        }
    }

    /// The kind of a usage record's rejection reason, as this module wrote
    /// it (the store passes reasons on as text); `None` for any other text.
    pub fn of(reason: &str) -> Option<UsageRejection> {
        UsageRejection::ALL
            .into_iter()
            .find(|kind| reason.starts_with(kind.lead()))
    }
}

/// One outcome per status and per usage record, in order, and the changes.
/// A usage record `Accepted` is to be stored; the others are not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    pub statuses: Vec<Outcome>,
    pub usage: Vec<Outcome>,
    pub changes: Changes,
}

/// The one answer for an item about an attempt that is not the reporting
/// site's current one, whether the task moved on, belongs to another site,
/// or does not exist: a site learns nothing about tasks that are not its own.
pub fn not_current(attempt: u32) -> Outcome {
    Outcome::Rejected(format!(
        "attempt {attempt} is not a current attempt at this site (stale, or no such task)"
    ))
}

/// What the view must hold: the row of every task an item names (where it
/// has one) and its job with its counts; for each gang among those jobs,
/// every placed and running task; the stored usage keys among those the
/// records name; and the stored wall time of each attempt they name.
///
/// Usage is decided first, on the tasks as they were: the usage of an
/// attempt that fails in the same report still belongs to that attempt.
/// A record is taken when it is of the reporting site's current attempt,
/// names its pool, holds the job's units, is not already stored, and the
/// attempt's wall time in all (stored, taken earlier in this report, and
/// its own) fits the window from the attempt's placement to `now_ms` plus
/// the slack ([`wall_ms_max`]). Statuses then apply in order, each seeing
/// the ones before it. A gang whose member went back to pending has its
/// other members requeued; one whose member ended for good has them
/// cancelled.
pub fn report(
    view: &View,
    site: &str,
    statuses: &[Status],
    usage: &[Usage],
    now_ms: i64,
) -> Decided {
    let mut work = Work::new(view);
    let mut seen: BTreeSet<UsageKey> = BTreeSet::new();
    // Wall time taken so far in this report, per attempt.
    let mut taken: BTreeMap<AttemptAt, u64> = BTreeMap::new();
    let usage_outcomes = usage
        .iter()
        .map(|record| {
            let task = match usage_task(view, site, record) {
                Ok(task) => task,
                Err(rejected) => return rejected,
            };
            let key = (
                site.to_owned(),
                record.job.clone(),
                record.task,
                record.attempt,
                record.seq,
            );
            if view.usage.contains(&key) || seen.contains(&key) {
                return Outcome::Duplicate;
            }
            let attempt: AttemptAt = (
                site.to_owned(),
                record.job.clone(),
                record.task,
                record.attempt,
            );
            let before = view.usage_wall_ms.get(&attempt).copied().unwrap_or(0)
                + taken.get(&attempt).copied().unwrap_or(0);
            if let Err(rejected) = fits_window(&task, record, before, now_ms) {
                return rejected;
            }
            seen.insert(key);
            *taken.entry(attempt).or_insert(0) += record.wall_ms;
            Outcome::Accepted
        })
        .collect();
    let mut status_outcomes = Vec::with_capacity(statuses.len());
    // Per gang with a member back to pending or ended: whether one ended for good.
    let mut gangs: BTreeMap<String, bool> = BTreeMap::new();
    for status in statuses {
        status_outcomes.push(apply_status(&mut work, site, status, &mut gangs));
    }
    for (job, ended_for_good) in gangs {
        work.gang_follow(&job, ended_for_good);
    }
    let changes = work.finish();
    assert_eq!(status_outcomes.len(), statuses.len());
    Decided {
        statuses: status_outcomes,
        usage: usage_outcomes,
        changes,
    }
}

/// The record's task, if the record is of the reporting site's current
/// attempt, in its pool, with the job's units.
fn usage_task(view: &View, site: &str, record: &Usage) -> Result<TaskNow, Outcome> {
    let Some(task) = view.task(&record.job, record.task) else {
        return Err(not_current(record.attempt));
    };
    if task.site.as_deref() != Some(site) || task.attempt != record.attempt {
        return Err(not_current(record.attempt));
    }
    if task.pool.as_deref() != Some(record.pool.as_str()) {
        return Err(Outcome::Rejected(format!(
            "pool {:?} is not the pool of this attempt",
            record.pool
        )));
    }
    let job = view
        .jobs
        .get(&record.job)
        .expect("a task's job is in the view");
    if record.units != job.units {
        return Err(Outcome::Rejected(format!(
            "units {} is not the job's {} per task",
            record.units, job.units
        )));
    }
    Ok(task)
}

/// Whether the attempt's wall time, `before` this record plus its own,
/// fits its window by `now_ms`.
fn fits_window(task: &TaskNow, record: &Usage, before: u64, now_ms: i64) -> Result<(), Outcome> {
    let Some(placed_at_ms) = task.placed_at_ms else {
        return Err(Outcome::Rejected(
            "wall_ms cannot be checked: the attempt has no placement time".to_owned(),
        ));
    };
    let total = before.saturating_add(record.wall_ms);
    let most = wall_ms_max(placed_at_ms, now_ms);
    if total > most {
        return Err(Outcome::Rejected(format!(
            "wall_ms {total} of attempt {} in all ({before} before this record's {}) \
             is beyond its window: at most {most} ms, {} ms from its placement at {placed_at_ms} \
             to this report at {now_ms} plus the slack",
            record.attempt,
            record.wall_ms,
            now_ms.saturating_sub(placed_at_ms).max(0),
        )));
    }
    Ok(())
}

fn apply_status(
    work: &mut Work<'_>,
    site: &str,
    status: &Status,
    gangs: &mut BTreeMap<String, bool>,
) -> Outcome {
    let Some(current) = work.task(&status.job, status.task) else {
        return not_current(status.attempt);
    };
    let job = work.job(&status.job).expect("a task's job is in the view");
    let kind = job.kind;
    let next = match transition(
        status.state,
        kind,
        &current,
        site,
        status.attempt,
        job.retries,
    ) {
        Ok(next) => next,
        Err(outcome) => return outcome,
    };
    let after = TaskNow {
        state: next,
        ..current.clone()
    };
    work.set(
        &status.job,
        status.task,
        &current,
        after,
        status.reason.clone(),
        status.exit_code,
        status.output_tail.clone(),
    );
    let mut detail = format!(
        "attempt {} {} at site {site}",
        status.attempt,
        status.state.as_str()
    );
    if let Some(code) = status.exit_code {
        detail.push_str(&format!(", exit code {code}"));
    }
    if let Some(reason) = &status.reason {
        detail.push_str(&format!(": {reason}"));
    }
    if next == TaskState::Pending {
        detail.push_str(if status.state == ReportedState::Succeeded {
            "; a service replica: starts again"
        } else {
            "; will retry"
        });
    }
    work.event(
        &status.job,
        Some(status.task),
        EventKind::from(next),
        detail,
    );
    if kind == JobKind::Gang && matches!(next, TaskState::Pending | TaskState::Failed) {
        *gangs.entry(status.job.clone()).or_insert(false) |= next == TaskState::Failed;
    }
    Outcome::Accepted
}

/// What a reported state does to a task of a job of `kind`, by the
/// lifecycle's rules (a service's replica that succeeded is started again),
/// or the item's outcome when it changes nothing: a resend of what the
/// task already shows is a duplicate, anything else is rejected.
pub fn transition(
    reported: ReportedState,
    kind: JobKind,
    current: &TaskNow,
    site: &str,
    attempt: u32,
    retries: u32,
) -> Result<TaskState, Outcome> {
    let service = kind == JobKind::Service;
    let event = match reported {
        ReportedState::Running => TaskEvent::Start,
        ReportedState::Succeeded if service => TaskEvent::ReplicaEnded,
        ReportedState::Succeeded => TaskEvent::Succeed,
        ReportedState::Failed => TaskEvent::Fail,
    };
    if current.site.as_deref() != Some(site) || current.attempt != attempt {
        return Err(not_current(attempt));
    }
    let task = crate::lifecycle::Task {
        state: current.state,
        attempt: current.attempt,
        retries,
    };
    match task.apply(event) {
        Ok(next) => Ok(next.state),
        Err(_) => {
            use ReportedState as R;
            use TaskState as S;
            let repeat = matches!(
                (reported, current.state),
                (R::Running, S::Running | S::Succeeded)
                    | (R::Succeeded, S::Succeeded)
                    | (R::Failed, S::Failed | S::Pending)
            ) || (service && reported == R::Succeeded && current.state == S::Pending);
            if repeat {
                Err(Outcome::Duplicate)
            } else {
                Err(Outcome::Rejected(format!(
                    "task is {}: {} does not apply",
                    current.state.as_str(),
                    reported.as_str()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_has_a_fixed_and_a_proportional_slack() {
        let hour = 3_600_000;
        for (placed, now, most) in [
            (1_000, 1_000, WINDOW_SLACK_MS),
            (1_000, 0, WINDOW_SLACK_MS),
            (0, 1, 1 + WINDOW_SLACK_MS + 1),
            (0, 10_000, 10_000 + WINDOW_SLACK_MS + 10),
            (0, hour, hour as u64 + WINDOW_SLACK_MS + 3_600),
            (
                i64::MIN,
                i64::MAX,
                i64::MAX as u64 + WINDOW_SLACK_MS + (i64::MAX as u64).div_ceil(1_000),
            ),
        ] {
            assert_eq!(wall_ms_max(placed, now), most, "{placed} {now}");
        }
    }

    #[test]
    fn every_rejection_reason_names_its_kind() {
        let reasons = [
            (not_current(3), UsageRejection::NotCurrent),
            (
                Outcome::Rejected(format!("pool {:?} is not the pool of this attempt", "q")),
                UsageRejection::Pool,
            ),
        ];
        for (outcome, kind) in reasons {
            let Outcome::Rejected(reason) = outcome else {
                panic!("a rejection")
            };
            assert_eq!(UsageRejection::of(&reason), Some(kind), "{reason}");
        }
        let task = TaskNow {
            placed_at_ms: Some(0),
            ..TaskNow::never_placed()
        };
        let record = Usage {
            job: "a".into(),
            task: 0,
            attempt: 1,
            seq: 0,
            pool: "p".into(),
            units: 1,
            wall_ms: u64::MAX,
        };
        for task in [
            task.clone(),
            TaskNow {
                placed_at_ms: None,
                ..task
            },
        ] {
            let Err(Outcome::Rejected(reason)) = fits_window(&task, &record, 0, 5) else {
                panic!("beyond its window")
            };
            assert_eq!(
                UsageRejection::of(&reason),
                Some(UsageRejection::Window),
                "{reason}"
            );
        }
        let labels: BTreeSet<&str> = UsageRejection::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), UsageRejection::ALL.len());
        assert_eq!(
            UsageRejection::of("task is running: failed does not apply"),
            None
        );
    }
}
