//! The control plane's state machine: every rule about jobs, tasks,
//! attempts and site leases, as pure functions (sans-IO, after quinn-proto).
//!
//! Each function takes the state it needs (a [`View`]: the rows a store
//! loaded under its locks, or the simulator's whole world), one input and
//! the time, and returns the [`Changes`] to apply and the events to record.
//! Nothing here reads a clock, a socket or a database; the store's part is to
//! load the view, apply the changes and record the events in one
//! transaction, and the simulator applies the same changes to its model
//! ([`model::Model`]).
//!
//! | input | function | module |
//! |---|---|---|
//! | a round's plan | [`round::plan`], [`round::RoundPlan::job_updates`] | `round` |
//! | a status report, usage records | [`report::report`] | `report` |
//! | a heartbeat | [`lease::heartbeat`] | `lease` |
//! | a lease check | [`lease::lapsed`], [`lease::lapse`], [`lease::extend`] | `lease` |
//! | a cancel | [`ending::cancel`] | `ending` |
//! | a deadline check | [`ending::deadline_missed`] | `ending` |
//!
//! Every function asserts its postconditions ([`Work::finish`]): each task
//! change is a legal `lifecycle` transition, no attempt beyond retries + 1,
//! no terminal task reopened, a job's counts still add up to its tasks, and
//! no gang left half placed (some members waiting while others hold
//! capacity). These asserts stay on in release builds: a broken rule must
//! stop the transaction, not be committed.

use std::collections::{BTreeMap, BTreeSet};

use crate::lifecycle::{job_state, Counts, EventKind, JobState, Task, TaskEvent, TaskState};
use crate::spec::JobKind;

pub mod ending;
pub mod lease;
pub mod model;
pub mod report;
pub mod round;
pub mod script;

#[cfg(test)]
mod tests;

/// A job as the machine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub kind: JobKind,
    /// Attempts allowed beyond the first, per task.
    pub retries: u32,
    /// Tasks in all.
    pub tasks: u64,
    /// Task rows exist for indexes below this; every index from here up is
    /// pending, attempt 0, never placed (lazy task rows).
    pub materialized: u64,
    /// Units one task holds.
    pub units: u64,
    pub cancel_requested: bool,
    pub state: JobState,
    /// Tasks by state, the never-placed tail counted as pending. Must be
    /// the job's whole counts (they decide its state).
    pub counts: Counts,
}

/// A task row: the current (or last) attempt and where it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskNow {
    pub state: TaskState,
    pub attempt: u32,
    pub site: Option<String>,
    pub pool: Option<String>,
    /// When the round that placed the current attempt wrote it (the
    /// server's clock): where the attempt's usage window begins. `None` for
    /// a task never placed (and for a row placed before the time was kept).
    pub placed_at_ms: Option<i64>,
}

impl TaskNow {
    /// A never-placed task: pending, attempt 0, nowhere.
    pub fn never_placed() -> TaskNow {
        TaskNow {
            state: TaskState::Pending,
            attempt: 0,
            site: None,
            pool: None,
            placed_at_ms: None,
        }
    }
}

/// A site and its heartbeat lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub healthy: bool,
    pub lease_expires_at_ms: Option<i64>,
}

/// (job, task index).
pub type TaskKey = (String, u64);

/// The key of one usage record: (site, job, task, attempt, seq).
pub type UsageKey = (String, String, u64, u32, u32);

/// One attempt at one site, as usage records name it: (site, job, task,
/// attempt).
pub type AttemptAt = (String, String, u64, u32);

/// The state a function decides on. A store fills in what the function's
/// documentation asks for; the simulator passes its whole world. A task
/// row absent here with an index at or above its job's `materialized` is
/// never placed; one below it that the function needs must be present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub jobs: BTreeMap<String, Job>,
    pub tasks: BTreeMap<TaskKey, TaskNow>,
    pub sites: BTreeMap<String, Site>,
    /// Usage records already stored (only those a report names).
    pub usage: BTreeSet<UsageKey>,
    /// The wall time of the usage records already stored, summed per
    /// attempt (only the attempts a report's records name; none stored:
    /// absent).
    pub usage_wall_ms: BTreeMap<AttemptAt, u64>,
}

impl View {
    /// The task, never-placed ones included; `None` if the job or index
    /// does not exist (or the row was not loaded).
    pub fn task(&self, job: &str, index: u64) -> Option<TaskNow> {
        let found = self.tasks.get(&(job.to_owned(), index));
        match (found, self.jobs.get(job)) {
            (Some(task), _) => Some(task.clone()),
            (None, Some(j)) if index >= j.materialized && index < j.tasks => {
                Some(TaskNow::never_placed())
            }
            _ => None,
        }
    }
}

/// One task row's new values. `None` keeps what the row has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskChange {
    pub job: String,
    pub index: u64,
    pub state: TaskState,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub output_tail: Option<String>,
}

/// Rows for the never-placed tasks `low..high` of `job`, created in
/// `state` (attempt 0, no site) with `reason`; the job's `materialized`
/// becomes `high` (a [`JobChange`] says so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailChange {
    pub job: String,
    pub low: u64,
    pub high: u64,
    pub units: u64,
    pub state: TaskState,
    pub reason: Option<String>,
}

/// One job row's new values; `None` and `false` keep what the row has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobChange {
    pub job: String,
    pub state: Option<JobState>,
    pub cancel_requested: bool,
    pub clear_why: bool,
    pub materialized: Option<u64>,
}

/// One site row's new values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteChange {
    pub site: String,
    pub healthy: Option<bool>,
    pub lease_expires_at_ms: Option<i64>,
    /// Its assignments changed: agents long-polling it wake up.
    pub bump_version: bool,
}

/// An event to record on a job, at the input's time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub job: String,
    pub task: Option<u64>,
    pub kind: EventKind,
    pub detail: String,
}

/// What a function decided. Tasks sorted by (job, index), jobs and sites by
/// id; each row at most once. Apply in the lock order: jobs, tasks, sites.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub tasks: Vec<TaskChange>,
    pub tails: Vec<TailChange>,
    pub jobs: Vec<JobChange>,
    pub sites: Vec<SiteChange>,
    pub events: Vec<Event>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.tails.is_empty()
            && self.jobs.is_empty()
            && self.sites.is_empty()
            && self.events.is_empty()
    }

    /// Adds `other`'s changes, of other jobs than these: tasks and jobs
    /// stay sorted when `other`'s come after these; sites are merged.
    pub fn merge(&mut self, other: Changes) {
        let last = |c: &Changes| c.jobs.last().map(|j| j.job.clone());
        if let (Some(mine), Some(first)) = (last(self), other.jobs.first()) {
            assert!(mine < first.job, "merged changes are of later jobs");
        }
        self.tasks.extend(other.tasks);
        self.tails.extend(other.tails);
        self.jobs.extend(other.jobs);
        self.events.extend(other.events);
        let mut sites: BTreeMap<String, SiteChange> = std::mem::take(&mut self.sites)
            .into_iter()
            .map(|s| (s.site.clone(), s))
            .collect();
        for site in other.sites {
            match sites.get_mut(&site.site) {
                None => {
                    sites.insert(site.site.clone(), site);
                }
                Some(mine) => {
                    mine.healthy = site.healthy.or(mine.healthy);
                    mine.lease_expires_at_ms =
                        site.lease_expires_at_ms.or(mine.lease_expires_at_ms);
                    mine.bump_version |= site.bump_version;
                }
            }
        }
        self.sites = sites.into_values().collect();
    }

    /// Tasks these changes take to `state`, rows and tails alike.
    pub fn tasks_to(&self, state: TaskState) -> u64 {
        let rows = self.tasks.iter().filter(|t| t.state == state).count() as u64;
        let tails: u64 = self
            .tails
            .iter()
            .filter(|t| t.state == state)
            .map(|t| t.high - t.low)
            .sum();
        rows + tails
    }

    /// The events of `kind` among these.
    pub fn events_of(&self, kind: EventKind) -> u64 {
        self.events.iter().filter(|e| e.kind == kind).count() as u64
    }
}

/// The outcome of one report item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Already recorded: a resend, harmless.
    Duplicate,
    Rejected(String),
}

/// Some tasks wait while others hold capacity: what a gang must never be.
pub fn half_placed(counts: &Counts) -> bool {
    let waiting = counts.get(TaskState::Pending);
    let holding = counts.get(TaskState::Placed) + counts.get(TaskState::Running);
    waiting > 0 && holding > 0
}

/// A function's working copy: the view with the changes so far laid over
/// it, so that later steps of one input see earlier ones (a gang's members
/// follow the member that failed in the same report).
#[derive(Debug)]
pub(crate) struct Work<'v> {
    view: &'v View,
    tasks: BTreeMap<TaskKey, (TaskNow, TaskChange)>,
    tails: Vec<TailChange>,
    jobs: BTreeMap<String, (Counts, JobChange, bool)>,
    sites: BTreeMap<String, SiteChange>,
    events: Vec<Event>,
}

impl<'v> Work<'v> {
    pub(crate) fn new(view: &'v View) -> Work<'v> {
        Work {
            view,
            tasks: BTreeMap::new(),
            tails: Vec::new(),
            jobs: BTreeMap::new(),
            sites: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    pub(crate) fn job(&self, job: &str) -> Option<&'v Job> {
        self.view.jobs.get(job)
    }

    /// The task as changed so far.
    pub(crate) fn task(&self, job: &str, index: u64) -> Option<TaskNow> {
        match self.tasks.get(&(job.to_owned(), index)) {
            Some((now, _)) => Some(now.clone()),
            None => self.view.task(job, index),
        }
    }

    /// The rows of `job` in `states`, as changed so far, in index order.
    pub(crate) fn rows_in(&self, job: &str, states: &[TaskState]) -> Vec<(u64, TaskNow)> {
        let range = (job.to_owned(), 0)..=(job.to_owned(), u64::MAX);
        let mut rows: BTreeMap<u64, TaskNow> = self
            .view
            .tasks
            .range(range.clone())
            .map(|((_, index), task)| (*index, task.clone()))
            .collect();
        for ((_, index), (now, _)) in self.tasks.range(range) {
            rows.insert(*index, now.clone());
        }
        rows.into_iter()
            .filter(|(_, task)| states.contains(&task.state))
            .collect()
    }

    fn counts(&mut self, job: &str) -> &mut (Counts, JobChange, bool) {
        let view = self.view;
        self.jobs.entry(job.to_owned()).or_insert_with(|| {
            let found = view
                .jobs
                .get(job)
                .expect("a changed task's job is in the view");
            (
                found.counts,
                JobChange {
                    job: job.to_owned(),
                    ..JobChange::default()
                },
                false,
            )
        })
    }

    /// Applies `event` to the task and records the change; `Err` if the
    /// lifecycle does not allow it (the task is left as it was).
    pub(crate) fn apply(
        &mut self,
        job: &str,
        index: u64,
        event: TaskEvent,
        reason: Option<String>,
    ) -> Result<TaskNow, crate::lifecycle::Illegal> {
        let before = self.task(job, index).expect("the task is in the view");
        let retries = self
            .job(job)
            .expect("the task's job is in the view")
            .retries;
        let next = Task {
            state: before.state,
            attempt: before.attempt,
            retries,
        }
        .apply(event)?;
        assert_eq!(
            next.attempt, before.attempt,
            "only a round begins an attempt"
        );
        let after = TaskNow {
            state: next.state,
            ..before.clone()
        };
        self.set(job, index, &before, after.clone(), reason, None, None);
        Ok(after)
    }

    /// Records a task row's new state and values.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn set(
        &mut self,
        job: &str,
        index: u64,
        before: &TaskNow,
        after: TaskNow,
        reason: Option<String>,
        exit_code: Option<i32>,
        output_tail: Option<String>,
    ) {
        let materialized = self.job(job).expect("the job is in the view").materialized;
        assert!(index < materialized, "task {job}[{index}] has a row");
        let counts = &mut self.counts(job).0;
        counts.remove(before.state, 1);
        counts.add(after.state, 1);
        let key = (job.to_owned(), index);
        let change = match self.tasks.remove(&key) {
            Some((_, mut change)) => {
                change.state = after.state;
                change.reason = reason.or(change.reason);
                change.exit_code = exit_code.or(change.exit_code);
                change.output_tail = output_tail.or(change.output_tail);
                change
            }
            None => TaskChange {
                job: job.to_owned(),
                index,
                state: after.state,
                reason,
                exit_code,
                output_tail,
            },
        };
        self.tasks.insert(key, (after, change));
    }

    /// Gives the never-placed tail of `job` its rows, in the state `event`
    /// takes a never-placed task to; returns how many.
    pub(crate) fn end_tail(&mut self, job: &str, event: TaskEvent, reason: Option<String>) -> u64 {
        let found = self.job(job).expect("the job is in the view");
        let low = self
            .job_change(job)
            .materialized
            .unwrap_or(found.materialized);
        if low >= found.tasks {
            return 0;
        }
        let next = Task::new(found.retries)
            .apply(event)
            .expect("the event applies to a never-placed task");
        let (high, units) = (found.tasks, found.units);
        let entry = self.counts(job);
        entry.0.remove(TaskState::Pending, high - low);
        entry.0.add(next.state, high - low);
        entry.1.materialized = Some(high);
        self.tails.push(TailChange {
            job: job.to_owned(),
            low,
            high,
            units,
            state: next.state,
            reason,
        });
        high - low
    }

    pub(crate) fn job_change(&mut self, job: &str) -> &mut JobChange {
        &mut self.counts(job).1
    }

    /// Marks the job's row as changed even when no task of it did.
    pub(crate) fn touch_job(&mut self, job: &str) {
        self.counts(job).2 = true;
    }

    pub(crate) fn site(&mut self, site: &str) -> &mut SiteChange {
        self.sites
            .entry(site.to_owned())
            .or_insert_with(|| SiteChange {
                site: site.to_owned(),
                ..SiteChange::default()
            })
    }

    pub(crate) fn event(&mut self, job: &str, task: Option<u64>, kind: EventKind, detail: String) {
        self.events.push(Event {
            job: job.to_owned(),
            task,
            kind,
            detail,
        });
    }

    /// A gang runs whole or not at all. After some of `job`'s tasks went
    /// back to pending (`ended_for_good` false) or ended for good (true),
    /// its other placed and running members follow: back to pending
    /// (`Requeue`), or cancelled. Their sites' assignments change.
    pub(crate) fn gang_follow(&mut self, job: &str, ended_for_good: bool) {
        let (event, reason) = if ended_for_good {
            (
                TaskEvent::Cancel,
                "cancelled: another member of its gang ended for good",
            )
        } else {
            (
                TaskEvent::Requeue,
                "another member of its gang must run again; the gang is placed again whole",
            )
        };
        for (index, task) in self.rows_in(job, &[TaskState::Placed, TaskState::Running]) {
            let next = self
                .apply(job, index, event, Some(reason.to_owned()))
                .expect("cancel and requeue apply to placed and running tasks");
            let detail = format!(
                "attempt {} ended with its gang; task is {}",
                task.attempt,
                next.state.as_str()
            );
            self.event(job, Some(index), EventKind::Gang, detail);
            if let Some(site) = &task.site {
                self.site(site).bump_version = true;
            }
        }
    }

    /// Settles each changed job's state from its counts (`job_state`); a
    /// job that leaves pending loses its explanation. Then the
    /// postconditions, and the changes in apply order.
    pub(crate) fn finish(mut self) -> Changes {
        let view = self.view;
        let mut jobs = Vec::new();
        for (id, (counts, mut change, touched)) in std::mem::take(&mut self.jobs) {
            let before = view.jobs.get(&id).expect("a changed job is in the view");
            assert_eq!(
                counts.total(),
                before.tasks,
                "job {id}: counts add up to its tasks"
            );
            let cancel = before.cancel_requested || change.cancel_requested;
            let state = job_state(&counts, cancel);
            if state != before.state {
                change.state = Some(state);
                change.clear_why |= state != JobState::Pending;
            }
            assert!(
                !before.state.is_terminal() || change.state.is_none(),
                "job {id}: a finished job stays finished"
            );
            // A gang the machine found whole stays whole (a store test may
            // build one half placed by hand; the machine must not make one).
            if before.kind == JobKind::Gang && !half_placed(&before.counts) {
                assert!(
                    !half_placed(&counts),
                    "gang {id} half placed: {} waiting, {} holding capacity",
                    counts.get(TaskState::Pending),
                    counts.get(TaskState::Placed) + counts.get(TaskState::Running)
                );
            }
            if touched
                || change
                    != (JobChange {
                        job: id.clone(),
                        ..JobChange::default()
                    })
            {
                jobs.push(change);
            }
        }
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for ((job, index), (after, change)) in std::mem::take(&mut self.tasks) {
            let before = view
                .task(&job, index)
                .expect("a changed task is in the view");
            let retries = view.jobs[&job].retries;
            assert!(
                !before.state.is_terminal() || before.state == after.state,
                "task {job}[{index}]: a terminal task is never reopened"
            );
            assert!(
                after.attempt <= retries + 1,
                "task {job}[{index}]: attempt {} beyond retries {retries} + 1",
                after.attempt
            );
            if before.state != after.state || change.reason.is_some() {
                tasks.push(change);
            }
        }
        self.tails
            .sort_by(|a, b| (&a.job, a.low).cmp(&(&b.job, b.low)));
        Changes {
            tasks,
            tails: self.tails,
            jobs,
            sites: self.sites.into_values().collect(),
            events: self.events,
        }
    }
}
