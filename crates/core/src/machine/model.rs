//! The whole world in memory, driven by the machine's functions: what the
//! simulator runs on a virtual clock, and what the property and twin tests
//! compare the real stores against. It applies [`Changes`] exactly as a
//! store does, so a difference between the two is a bug in one of them.

use std::collections::BTreeMap;

use super::report::{Decided, Status, Usage};
use super::round::{self, JobNow};
use super::{ending, lease, Changes, Event, Job, Site, TaskNow, View};
use crate::lifecycle::{Counts, JobState, TaskState};
use crate::spec::JobKind;

/// One input to the world, with its time: what a server receives, or a
/// simulator schedules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A tenant submits a job (one unit per task).
    Submit {
        job: String,
        kind: JobKind,
        tasks: u64,
        retries: u32,
    },
    /// A round's placements.
    Round {
        placements: Vec<round::Placed>,
        at_ms: i64,
    },
    Report {
        site: String,
        statuses: Vec<Status>,
        usage: Vec<Usage>,
        at_ms: i64,
    },
    Heartbeat {
        site: String,
        expires_at_ms: i64,
    },
    LeaseCheck {
        now_ms: i64,
    },
    Cancel {
        job: String,
        at_ms: i64,
    },
    Deadline {
        job: String,
        deadline_ms: i64,
        now_ms: i64,
    },
}

/// Who cancels in a scripted world.
pub const CANCELLED_BY: &str = "t-1";

/// What a task row holds beyond [`TaskNow`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskDetail {
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// Every job, task row, site, usage key and attempt's stored wall time.
    pub view: View,
    pub details: BTreeMap<(String, u64), TaskDetail>,
    pub whys: BTreeMap<String, Option<String>>,
    /// Each site's assignment version.
    pub versions: BTreeMap<String, i64>,
    /// Every event recorded, with its time.
    pub events: Vec<(i64, Event)>,
}

impl Model {
    /// Applies one input.
    pub fn input(&mut self, input: &Input) {
        match input {
            Input::Submit {
                job,
                kind,
                tasks,
                retries,
            } => self.submit(job, *kind, *tasks, 1, *retries),
            Input::Round { placements, at_ms } => self.round(placements, &[], *at_ms),
            Input::Report {
                site,
                statuses,
                usage,
                at_ms,
            } => {
                self.report(site, statuses, usage, *at_ms);
            }
            Input::Heartbeat {
                site,
                expires_at_ms,
            } => self.heartbeat(site, *expires_at_ms),
            Input::LeaseCheck { now_ms } => {
                self.lease_check(*now_ms);
            }
            Input::Cancel { job, at_ms } => {
                self.cancel(job, CANCELLED_BY, *at_ms);
            }
            Input::Deadline {
                job,
                deadline_ms,
                now_ms,
            } => {
                self.deadline_missed(job, *deadline_ms, *now_ms);
            }
        }
    }

    pub fn add_site(&mut self, id: &str) {
        let site = Site {
            healthy: false,
            lease_expires_at_ms: None,
        };
        assert!(
            self.view.sites.insert(id.to_owned(), site).is_none(),
            "site {id} is new"
        );
        self.versions.insert(id.to_owned(), 0);
    }

    pub fn submit(&mut self, id: &str, kind: JobKind, tasks: u64, units: u64, retries: u32) {
        assert!(tasks > 0, "a job has tasks");
        let mut counts = Counts::default();
        counts.add(TaskState::Pending, tasks);
        let job = Job {
            kind,
            retries,
            tasks,
            materialized: 0,
            units,
            cancel_requested: false,
            state: JobState::Pending,
            counts,
        };
        assert!(
            self.view.jobs.insert(id.to_owned(), job).is_none(),
            "job {id} is new"
        );
    }

    pub fn heartbeat(&mut self, site: &str, expires_at_ms: i64) {
        let change = lease::heartbeat(site, expires_at_ms);
        self.apply(
            &Changes {
                sites: vec![change],
                ..Changes::default()
            },
            expires_at_ms,
        );
    }

    /// Lapses the leases that ended before `now_ms`; returns the tasks lost.
    pub fn lease_check(&mut self, now_ms: i64) -> u64 {
        let lapsed = lease::lapsed(&self.view.sites, now_ms);
        if lapsed.is_empty() {
            return 0;
        }
        let changes = lease::lapse(&self.view, &lapsed);
        let lost = changes.events_of(crate::lifecycle::EventKind::Lost);
        self.apply(&changes, now_ms);
        lost
    }

    pub fn report(
        &mut self,
        site: &str,
        statuses: &[Status],
        usage: &[Usage],
        now_ms: i64,
    ) -> Decided {
        let decided = super::report::report(&self.view, site, statuses, usage, now_ms);
        for (record, outcome) in usage.iter().zip(&decided.usage) {
            if *outcome == super::Outcome::Accepted {
                self.view.usage.insert((
                    site.to_owned(),
                    record.job.clone(),
                    record.task,
                    record.attempt,
                    record.seq,
                ));
                *self
                    .view
                    .usage_wall_ms
                    .entry((
                        site.to_owned(),
                        record.job.clone(),
                        record.task,
                        record.attempt,
                    ))
                    .or_insert(0) += record.wall_ms;
            }
        }
        self.apply(&decided.changes, now_ms);
        decided
    }

    /// `false` if there is no such job.
    pub fn cancel(&mut self, job: &str, by: &str, now_ms: i64) -> bool {
        match ending::cancel(&self.view, job, by) {
            None => false,
            Some(changes) => {
                self.apply(&changes, now_ms);
                true
            }
        }
    }

    pub fn deadline_missed(&mut self, job: &str, deadline_ms: i64, now_ms: i64) -> u64 {
        let changes = ending::deadline_missed(&self.view, job, deadline_ms);
        let failed = changes.tasks_to(TaskState::Failed);
        self.apply(&changes, now_ms);
        failed
    }

    /// Tasks of `job` a round may place now ([`round::offered`]).
    pub fn offered(&self, job: &str) -> u64 {
        let Some(found) = self.view.jobs.get(job) else {
            return 0;
        };
        if found.cancel_requested {
            return 0;
        }
        let pending = found.counts.get(TaskState::Pending);
        let live =
            pending + found.counts.get(TaskState::Placed) + found.counts.get(TaskState::Running);
        round::offered(found.kind, pending, live)
    }

    /// Writes a round: `placements` as the engine chose them, `whys` the
    /// explanations of jobs left waiting.
    pub fn round(
        &mut self,
        placements: &[round::Placed],
        whys: &[(String, Option<String>)],
        now_ms: i64,
    ) {
        let mut jobs = BTreeMap::new();
        let mut pending: BTreeMap<String, Vec<(u64, u32)>> = BTreeMap::new();
        for round::Placed { job: id, .. } in placements {
            let Some(found) = self.view.jobs.get(id) else {
                continue;
            };
            jobs.insert(
                id.clone(),
                JobNow {
                    tasks: found.tasks,
                    materialized: found.materialized,
                    units: found.units,
                    cancel_requested: found.cancel_requested,
                    state: found.state,
                },
            );
            let rows = self
                .view
                .tasks
                .range((id.clone(), 0)..=(id.clone(), u64::MAX))
                .filter(|(_, task)| task.state == TaskState::Pending)
                .map(|((_, index), task)| (*index, task.attempt))
                .collect();
            pending.insert(id.clone(), rows);
        }
        let plan = round::plan(placements, &jobs, &pending);
        for p in &plan.updates {
            let key = (p.job.to_owned(), p.index);
            let task = self.view.tasks.get_mut(&key).expect("a pending row");
            assert_eq!(task.state, TaskState::Pending);
            *task = TaskNow {
                state: p.state,
                attempt: p.attempt,
                site: Some(p.site.to_owned()),
                pool: Some(p.pool.to_owned()),
                placed_at_ms: Some(now_ms),
            };
            self.details.insert(key, TaskDetail::default());
        }
        let (first_state, first_attempt) = round::first_placement();
        for insert in &plan.inserts {
            for index in insert.low..insert.high {
                let task = TaskNow {
                    state: first_state,
                    attempt: first_attempt,
                    site: Some(insert.site.to_owned()),
                    pool: Some(insert.pool.to_owned()),
                    placed_at_ms: Some(now_ms),
                };
                let key = (insert.job.to_owned(), index);
                assert!(
                    self.view.tasks.insert(key.clone(), task).is_none(),
                    "a new row"
                );
                self.details.insert(key, TaskDetail::default());
            }
        }
        for ((job, pool, site), count) in &plan.placed {
            self.record(
                now_ms,
                Event {
                    job: (*job).to_owned(),
                    task: None,
                    kind: crate::lifecycle::EventKind::Placed,
                    detail: format!("{count} tasks on pool {pool} at site {site}"),
                },
            );
        }
        for update in plan.job_updates(&jobs, whys) {
            let job = self.view.jobs.get_mut(update.id);
            if let Some(job) = job {
                if let Some(n) = update.materialized {
                    job.materialized = n;
                }
                if let Some(state) = update.state {
                    job.state = state;
                }
            }
            if let Some(why) = update.why {
                self.whys
                    .insert(update.id.to_owned(), why.map(str::to_owned));
            }
        }
        for site in &plan.sites {
            *self.versions.get_mut(*site).expect("a known site") += 1;
        }
        for job in &plan.jobs {
            self.recount(job);
        }
    }

    fn record(&mut self, at_ms: i64, event: Event) {
        self.events.push((at_ms, event));
    }

    /// Applies `changes` as a store does: tasks, tails, jobs, sites, events.
    pub fn apply(&mut self, changes: &Changes, now_ms: i64) {
        for change in &changes.tasks {
            let key = (change.job.clone(), change.index);
            let task = self
                .view
                .tasks
                .get_mut(&key)
                .expect("a changed task has a row");
            task.state = change.state;
            let detail = self.details.entry(key).or_default();
            if change.reason.is_some() {
                detail.reason.clone_from(&change.reason);
            }
            if change.exit_code.is_some() {
                detail.exit_code = change.exit_code;
            }
        }
        for tail in &changes.tails {
            for index in tail.low..tail.high {
                let key = (tail.job.clone(), index);
                let task = TaskNow {
                    state: tail.state,
                    ..TaskNow::never_placed()
                };
                assert!(
                    self.view.tasks.insert(key.clone(), task).is_none(),
                    "a tail row is new"
                );
                let detail = TaskDetail {
                    reason: tail.reason.clone(),
                    exit_code: None,
                };
                self.details.insert(key, detail);
            }
        }
        for change in &changes.jobs {
            let job = self
                .view
                .jobs
                .get_mut(&change.job)
                .expect("a changed job exists");
            if let Some(state) = change.state {
                job.state = state;
            }
            job.cancel_requested |= change.cancel_requested;
            if let Some(n) = change.materialized {
                job.materialized = n;
            }
            if change.clear_why {
                self.whys.insert(change.job.clone(), None);
            }
        }
        for change in &changes.sites {
            let site = self
                .view
                .sites
                .get_mut(&change.site)
                .expect("a changed site exists");
            if let Some(healthy) = change.healthy {
                site.healthy = healthy;
            }
            if let Some(at) = change.lease_expires_at_ms {
                site.lease_expires_at_ms = Some(at);
            }
            if change.bump_version {
                *self.versions.get_mut(&change.site).expect("a known site") += 1;
            }
        }
        for event in &changes.events {
            self.record(now_ms, event.clone());
        }
        let mut jobs: Vec<&str> = changes.tasks.iter().map(|t| t.job.as_str()).collect();
        jobs.extend(changes.tails.iter().map(|t| t.job.as_str()));
        jobs.sort_unstable();
        jobs.dedup();
        for job in jobs {
            let job = job.to_owned();
            self.recount(&job);
        }
    }

    /// A job's counts from its rows and never-placed tail.
    fn recount(&mut self, job: &str) {
        let mut counts = Counts::default();
        for (_, task) in self
            .view
            .tasks
            .range((job.to_owned(), 0)..=(job.to_owned(), u64::MAX))
        {
            counts.add(task.state, 1);
        }
        let found = self.view.jobs.get_mut(job).expect("a known job");
        counts.add(TaskState::Pending, found.tasks - found.materialized);
        found.counts = counts;
    }
}
