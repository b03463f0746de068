//! A site's report: the statuses of its attempts and their usage records.

use std::collections::{BTreeMap, BTreeSet};

use super::{Changes, Outcome, TaskNow, UsageKey, View, Work};
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

/// Which attempt a usage record is of, and its pool: what decides whether
/// it is taken (the store keeps the rest of the record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub pool: String,
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
/// every placed and running task; and the stored usage keys among those the
/// records name.
///
/// Usage is decided first, on the tasks as they were: the usage of an
/// attempt that fails in the same report still belongs to that attempt.
/// Statuses then apply in order, each seeing the ones before it. A gang
/// whose member went back to pending has its other members requeued; one
/// whose member ended for good has them cancelled.
pub fn report(view: &View, site: &str, statuses: &[Status], usage: &[Usage]) -> Decided {
    let mut work = Work::new(view);
    let mut seen: BTreeSet<UsageKey> = BTreeSet::new();
    let usage_outcomes = usage
        .iter()
        .map(|record| {
            let outcome = usage_outcome(view, site, record);
            if outcome != Outcome::Accepted {
                return outcome;
            }
            let key = (
                site.to_owned(),
                record.job.clone(),
                record.task,
                record.attempt,
                record.seq,
            );
            if view.usage.contains(&key) || !seen.insert(key) {
                Outcome::Duplicate
            } else {
                Outcome::Accepted
            }
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

fn usage_outcome(view: &View, site: &str, record: &Usage) -> Outcome {
    let Some(task) = view.task(&record.job, record.task) else {
        return not_current(record.attempt);
    };
    if task.site.as_deref() != Some(site) || task.attempt != record.attempt {
        return not_current(record.attempt);
    }
    if task.pool.as_deref() != Some(record.pool.as_str()) {
        return Outcome::Rejected(format!(
            "pool {:?} is not the pool of this attempt",
            record.pool
        ));
    }
    Outcome::Accepted
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
