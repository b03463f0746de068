//! The discrete-event loop: suanwang on a virtual clock.
//!
//! The world is `core::machine::model::Model` — the machine's whole state in
//! memory — and every change to it is made by the machine's own functions,
//! exactly as the server's store makes them:
//!
//! | what happens | server | twin |
//! |---|---|---|
//! | a job arrives | `POST /v1/jobs` → store | `Model::submit` |
//! | a round | `scheduler::round_once` → `core::round::plan` → `apply_round` (`machine::round::plan`) | the policy ([`crate::policy`]; `market` is `core::round::plan`) → `Model::round` (`machine::round::plan`) |
//! | an agent starts, ends an attempt | `POST /v1/sites/{id}/reports` → `machine::report::report` | `Model::report` |
//! | a heartbeat | `machine::lease::heartbeat` | `Model::heartbeat` |
//! | a lease check | `machine::lease::lapsed` + `lapse` | the same two functions + `Model::apply` |
//! | a deadline | `deadline::verdict` → `machine::ending::deadline_missed` | the same |
//! | the end of the run | — | `machine::ending::cancel` for work left |
//!
//! The twin adds only what the network would: time (a virtual clock in
//! milliseconds), agents that start what they are given and report it
//! after the task's run time, heartbeats every `heartbeat_s`, and the
//! failures of the scenario. It observes the machine's `Changes` to keep
//! its own books ([`measure`]) — which attempt holds which units, what ran
//! for how long — and never decides a job's or task's fate itself.
//!
//! *Order at one instant*: failures, then reports of finished attempts,
//! then arrivals, then the round, so a round sees what finished and what
//! arrived at its time.
//!
//! *Rounds that cannot change anything are not solved*: a round whose
//! input is the last round's (nothing arrived, finished, requeued or came
//! back since) and where that round placed nothing would place nothing
//! again — the engine is deterministic — so the twin counts it and moves
//! on. Deadlines and lease checks still run every round.
//!
//! *Heartbeats are applied when they matter*: an agent heartbeats every
//! `heartbeat_s`, so while every site is up no lease can lapse and the
//! lease check finds nothing. The twin therefore applies an up site's
//! latest heartbeat only before a lease check that could lapse something
//! (while some site is silent), and a silent site's last heartbeat when it
//! goes silent. The machine sees the same leases at every check as if every
//! heartbeat had been sent.
//!
//! *Finished jobs leave the model*: once a job is terminal no rule reads it
//! again (a late report of it is "not current" either way), so its rows are
//! dropped from the model to keep a year of a million jobs in memory.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use suanwang_core::lifecycle::JobState;
use suanwang_core::machine::model::Model;
use suanwang_core::round::RoundPool;

use crate::policy::Policy;
use crate::setup::{Fault, Setup};
use crate::workload::START_MS;

mod agents;
pub mod measure;
mod outcome;
mod round;

pub use measure::Measures;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Check every non-market round with `place::check` (a violation
    /// panics). On in tests; costs a bound computation per round.
    pub verify: bool,
}

/// What one policy's run ends with.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub policy: Policy,
    pub measures: Measures,
    /// The final state of every job that arrived, in job order.
    pub finals: Vec<JobState>,
    /// Jobs cancelled at the end because they had not finished.
    pub cut_at_end: u64,
    /// Their reasons (the last explanation), by reason.
    pub cut_reasons: BTreeMap<String, u64>,
    /// Jobs that arrive after the horizon.
    pub not_arrived: u64,
    /// Jobs their tenants cancelled for waiting longer than their patience.
    pub gave_up: u64,
    pub end_ms: i64,
}

/// One attempt that holds units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Live {
    pub attempt: u32,
    pub pool: u32,
    /// What each unit-hour of it costs the tenant (`core::price`).
    pub price_micro_yuan_per_unit_hour: i64,
    /// When its agent started it (`None`: assigned, not yet started).
    pub start_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SiteState {
    Up,
    Down {
        since_ms: i64,
    },
    /// Reports wait in the outbox: (finished at, job, task, attempt).
    Partition {
        outbox: Vec<(i64, u32, u64, u32)>,
    },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct JobRun {
    pub id: String,
    pub submitted: bool,
    pub fully_placed: bool,
    pub final_state: Option<JobState>,
    /// Usage keys the model holds for it: (site, task, attempt).
    pub usage: Vec<(u32, u64, u32)>,
}

/// A failure's start or end, in time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Transition {
    pub at_ms: i64,
    /// Ends before starts at one instant (a site back up, then another down).
    pub start: bool,
    pub site: usize,
    pub fault: Fault,
}

impl PartialOrd for Fault {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Fault {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

pub(crate) struct Twin<'s> {
    pub setup: &'s Setup,
    pub policy: Policy,
    pub options: Options,
    pub model: Model,
    pub now: i64,
    pub round_pools: Vec<RoundPool>,
    /// Units held per pool (placed and running attempts).
    pub used: Vec<u64>,
    pub live: BTreeMap<(u32, u64), Live>,
    /// (time, job): a tenant's patience runs out.
    pub give_ups: BinaryHeap<Reverse<(i64, u32)>>,
    /// Jobs their tenants cancelled for waiting too long.
    pub gave_up: u64,
    /// (finishes at, job, task, attempt).
    pub completions: BinaryHeap<Reverse<(i64, u32, u64, u32)>>,
    /// Jobs with tasks waiting, in submit order.
    pub waiting: BTreeSet<u32>,
    /// The last reason each waiting job was given.
    pub last_reason: BTreeMap<u32, String>,
    /// The last solved round's waiting jobs by reason: (reason, jobs,
    /// tasks), what every round skipped after it counts again.
    pub last_waiting: Vec<(String, u64, u64)>,
    pub jobs: Vec<JobRun>,
    pub sites: Vec<SiteState>,
    /// Placed on a silent site, not started: (job, task, attempt) per site.
    pub unstarted: Vec<Vec<(u32, u64, u32)>>,
    pub dirty: bool,
    pub last_placed: u64,
    pub next_sample_ms: i64,
    pub sample_every_ms: i64,
    pub m: Measures,
}

/// Runs the scenario under `policy`. `progress(arrived, total)` is called
/// after every round.
pub fn run(
    setup: &Setup,
    policy: Policy,
    options: Options,
    progress: &mut dyn FnMut(u64, u64),
) -> Outcome {
    let mut twin = Twin::new(setup, policy, options);
    let mut transitions: Vec<Transition> = setup
        .failures
        .iter()
        .flat_map(|f| {
            [
                Transition {
                    at_ms: f.from_ms,
                    start: true,
                    site: f.site,
                    fault: f.fault,
                },
                Transition {
                    at_ms: f.to_ms,
                    start: false,
                    site: f.site,
                    fault: f.fault,
                },
            ]
        })
        .collect();
    transitions.sort();
    let (mut next_arrival, mut next_transition) = (0usize, 0usize);
    let mut next_round = START_MS;
    let total = setup.arrivals.len() as u64;
    loop {
        let candidates = [
            setup.arrivals.get(next_arrival).map(|a| a.at_ms),
            transitions.get(next_transition).map(|t| t.at_ms),
            twin.completions.peek().map(|Reverse(c)| c.0),
            twin.give_ups.peek().map(|Reverse(g)| g.0),
            Some(next_round),
        ];
        let t = candidates
            .into_iter()
            .flatten()
            .min()
            .expect("the next round is always there");
        if t > setup.end_ms {
            break;
        }
        twin.now = t;
        while let Some(tr) = transitions.get(next_transition).filter(|tr| tr.at_ms == t) {
            twin.transition(*tr);
            next_transition += 1;
        }
        twin.complete_due();
        while let Some(&Reverse((at, j))) = twin.give_ups.peek() {
            if at != t {
                break;
            }
            twin.give_ups.pop();
            twin.give_up(j);
        }
        while setup
            .arrivals
            .get(next_arrival)
            .is_some_and(|a| a.at_ms == t)
        {
            twin.submit(next_arrival as u32);
            next_arrival += 1;
        }
        if t == next_round {
            twin.round();
            next_round += setup.round_ms;
            progress(next_arrival as u64, total);
        }
        let quiet = next_arrival == setup.arrivals.len()
            && next_transition == transitions.len()
            && twin.completions.is_empty()
            && twin.give_ups.is_empty()
            && twin.live.is_empty()
            && (twin.waiting.is_empty() || (!twin.dirty && twin.last_placed == 0));
        if quiet && t != START_MS {
            break;
        }
    }
    progress(next_arrival as u64, total);
    twin.finish(total - next_arrival as u64)
}

impl<'s> Twin<'s> {
    fn new(setup: &'s Setup, policy: Policy, options: Options) -> Twin<'s> {
        let mut model = Model::default();
        for site in &setup.sites {
            model.add_site(&site.id);
            // Every agent's first heartbeat, at the start.
            model.heartbeat(&site.id, START_MS + setup.lease_ms);
        }
        let round_pools = setup
            .pools
            .iter()
            .map(|p| {
                let site = &setup.sites[p.site];
                RoundPool {
                    id: p.id.clone(),
                    site: site.id.clone(),
                    site_name: site.name.clone(),
                    name: p.name.clone(),
                    region: p.region,
                    kind: p.kind,
                    family: p.family.clone(),
                    free_units: p.capacity,
                    price_micro_yuan_per_unit_hour: p.price_micro_yuan_per_unit_hour,
                    power_kw_per_unit: p.power_kw_per_unit,
                    pue: p.pue,
                    grid_kg_co2_per_kwh: p.grid_kg_co2_per_kwh,
                }
            })
            .collect();
        let mut series: Vec<(usize, suanwang_place::Kind, u64)> = Vec::new();
        for p in &setup.pools {
            match series
                .iter_mut()
                .find(|(r, k, _)| *r == p.region && *k == p.kind)
            {
                Some(entry) => entry.2 += p.capacity,
                None => series.push((p.region, p.kind, p.capacity)),
            }
        }
        series.sort_by_key(|(r, k, _)| (*r, *k));
        let last = setup
            .arrivals
            .last()
            .map_or(START_MS, |a| a.at_ms + a.duration_ms);
        let span = (last.min(setup.end_ms) - START_MS).max(setup.round_ms);
        // About 300 samples over the run, on round times.
        let every = (span / 300).max(setup.round_ms);
        let every = (every + setup.round_ms - 1) / setup.round_ms * setup.round_ms;
        let m = Measures {
            used: vec![Vec::new(); series.len()],
            series,
            ..Measures::default()
        };
        Twin {
            setup,
            policy,
            options,
            model,
            now: START_MS,
            round_pools,
            used: vec![0; setup.pools.len()],
            live: BTreeMap::new(),
            give_ups: BinaryHeap::new(),
            gave_up: 0,
            completions: BinaryHeap::new(),
            waiting: BTreeSet::new(),
            last_reason: BTreeMap::new(),
            last_waiting: Vec::new(),
            jobs: (0..setup.arrivals.len())
                .map(|j| JobRun {
                    id: job_id(j as u32),
                    ..JobRun::default()
                })
                .collect(),
            sites: vec![SiteState::Up; setup.sites.len()],
            unstarted: vec![Vec::new(); setup.sites.len()],
            dirty: false,
            last_placed: 0,
            next_sample_ms: START_MS,
            sample_every_ms: every,
            m,
        }
    }

    fn submit(&mut self, j: u32) {
        let arrival = &self.setup.arrivals[j as usize];
        let def = &arrival.def;
        let run = &mut self.jobs[j as usize];
        self.model
            .submit(&run.id, def.kind, def.tasks, def.units, def.retries);
        run.submitted = true;
        if let Some(at) = arrival.give_up_ms {
            self.give_ups.push(Reverse((at, j)));
        }
        self.waiting.insert(j);
        self.dirty = true;
        self.m.events += 1;
    }

    /// The tenant cancels a job not yet wholly placed (the machine's own
    /// cancel: what runs of it is stopped, what waits is cancelled).
    fn give_up(&mut self, j: u32) {
        let run = &self.jobs[j as usize];
        if run.final_state.is_some() || run.fully_placed {
            return;
        }
        let id = run.id.clone();
        let changes = suanwang_core::machine::ending::cancel(&self.model.view, &id, "tenant")
            .expect("a submitted job is in the model");
        self.absorb(&changes, outcome::Cause::Cancel, &BTreeSet::new());
        self.model.apply(&changes, self.now);
        self.retire_finished(&changes);
        self.gave_up += 1;
        self.m.events += 1;
        self.dirty = true;
    }

    /// Cancels what is left (the machine's own cancel) and gathers the
    /// outcome.
    fn finish(mut self, not_arrived: u64) -> Outcome {
        let mut cut_at_end = 0;
        let mut cut_reasons: BTreeMap<String, u64> = BTreeMap::new();
        for j in 0..self.jobs.len() as u32 {
            let run = &self.jobs[j as usize];
            if !run.submitted || run.final_state.is_some() {
                continue;
            }
            let reason = self
                .last_reason
                .get(&j)
                .cloned()
                .unwrap_or_else(|| "still running at the end".to_owned());
            *cut_reasons.entry(reason).or_default() += 1;
            cut_at_end += 1;
            let id = run.id.clone();
            let changes = suanwang_core::machine::ending::cancel(&self.model.view, &id, "sim")
                .expect("a submitted job is in the model");
            self.absorb(&changes, outcome::Cause::Cancel, &BTreeSet::new());
            self.model.apply(&changes, self.now);
            self.retire_finished(&changes);
        }
        let finals = self
            .jobs
            .iter()
            .filter(|run| run.submitted)
            .map(|run| run.final_state.expect("every submitted job ended"))
            .collect();
        Outcome {
            policy: self.policy,
            measures: self.m,
            finals,
            cut_at_end,
            cut_reasons,
            not_arrived,
            gave_up: self.gave_up,
            end_ms: self.now,
        }
    }
}

pub(crate) fn job_id(j: u32) -> String {
    format!("j{j:07}")
}

pub(crate) fn job_of(id: &str) -> u32 {
    id[1..].parse().expect("a twin job id")
}

pub(crate) fn pool_of(id: &str) -> u32 {
    id[1..].parse().expect("a twin pool id")
}
