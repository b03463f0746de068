//! Random but reproducible inputs for the model and the stores: one seed,
//! one sequence. The property test drives the model with it; the twin test
//! drives the model and each real store with the same inputs and compares
//! them; the simulator will grow from it.

use super::model::{Input, Model};
use super::report::{Status, Usage};
use super::round::Placed;
use crate::lifecycle::ReportedState;
use crate::price::AttemptPrice;
use crate::spec::JobKind;

/// The kinds of job the world submits: (id prefix, kind, tasks, retries);
/// one unit per task. The first four are there from the start.
pub const JOBS: [(&str, JobKind, u64, u32); 4] = [
    ("b", JobKind::Batch, 3, 1),
    ("g", JobKind::Gang, 3, 1),
    ("s", JobKind::Service, 2, 2),
    ("z", JobKind::Batch, 4, 0),
];

/// Jobs the world submits at most, the first four included.
pub const JOBS_MAX: usize = 40;

/// The world's sites; each has one pool, `{site}.p`.
pub const SITES: [&str; 2] = ["s1", "s2"];

/// The start of the script's clock.
pub const START_MS: i64 = 1_700_000_000_000;

/// How long a heartbeat's lease runs.
pub const LEASE_MS: i64 = 50;

/// Every scripted placement's price: the script tests the lifecycle, and
/// prices do not decide it.
pub const SCRIPT_PRICE: AttemptPrice = AttemptPrice {
    price_micro_yuan_per_unit_hour: 1_000_000,
    transfer_micro_yuan_per_gb: 0,
    bid_micro_yuan_per_unit_hour: 2_000_000,
    data_mb: 0,
};

pub fn pool_of(site: &str) -> String {
    format!("{site}.p")
}

/// A seeded generator of inputs (splitmix64: small, and the same on every
/// machine).
#[derive(Clone, Debug)]
pub struct Script {
    state: u64,
    now_ms: i64,
    submitted: usize,
}

impl Script {
    pub fn new(seed: u64) -> Script {
        Script {
            state: seed,
            now_ms: START_MS,
            submitted: JOBS.len(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// The world before the first input: the sites (not yet healthy) and
    /// the jobs, submitted.
    pub fn world(&self) -> Model {
        let mut model = Model::default();
        for site in SITES {
            model.add_site(site);
        }
        for (id, kind, tasks, retries) in JOBS {
            model.submit(id, kind, tasks, 1, retries);
        }
        model
    }

    /// A job to act on: mostly an unfinished one.
    fn pick<'m>(&mut self, model: &'m Model) -> (&'m str, &'m super::Job) {
        let open: Vec<(&String, &super::Job)> = model
            .view
            .jobs
            .iter()
            .filter(|(_, job)| !job.state.is_terminal())
            .collect();
        let all: Vec<(&String, &super::Job)> = model.view.jobs.iter().collect();
        let from = if open.is_empty() || self.below(8) == 0 {
            all
        } else {
            open
        };
        let (id, job) = from[self.below(from.len() as u64) as usize];
        (id.as_str(), job)
    }

    /// The next input, chosen from what `model` is now; `None` when the
    /// chosen kind of input has nothing to act on (the step is skipped).
    pub fn next(&mut self, model: &Model) -> Option<Input> {
        let (id, job) = self.pick(model);
        let (kind, tasks) = (job.kind, job.tasks);
        let site = SITES[self.below(SITES.len() as u64) as usize];
        let roll = self.below(18);
        let now_ms = self.now_ms;
        match roll {
            0..=3 => {
                let offered = model.offered(id);
                let count = if kind == JobKind::Gang {
                    offered
                } else {
                    (1 + self.below(3)).min(offered)
                };
                if count == 0 || !model.view.sites[site].healthy {
                    return None;
                }
                let placement = Placed {
                    job: id.to_owned(),
                    pool: pool_of(site),
                    site: site.to_owned(),
                    count,
                    price: SCRIPT_PRICE,
                };
                Some(Input::Round {
                    placements: vec![placement],
                    at_ms: now_ms,
                })
            }
            4..=10 => {
                let task = self.below(tasks);
                let state = ReportedState::ALL[self.below(3) as usize];
                let wrong_attempt = self.below(10) == 0;
                let found = model.view.task(id, task)?;
                let site = found.site?;
                let status = Status {
                    job: id.to_owned(),
                    task,
                    attempt: found.attempt + u32::from(wrong_attempt),
                    state,
                    exit_code: Some(i32::from(state == ReportedState::Failed)),
                    reason: None,
                    output_tail: None,
                };
                Some(Input::Report {
                    site,
                    statuses: vec![status],
                    usage: Vec::new(),
                    at_ms: now_ms,
                })
            }
            11 => {
                let task = self.below(tasks);
                let seq = self.below(3) as u32;
                let found = model.view.task(id, task)?;
                let site = found.site?;
                // Mostly a record that fits; now and then one with the wrong
                // units, or more wall time than the attempt's window holds.
                let units = job.units + u64::from(self.below(10) == 0);
                let wall_ms = match self.below(10) {
                    0 => super::report::WINDOW_SLACK_MS + 1_000,
                    _ => self.below(1_000),
                };
                let record = Usage {
                    job: id.to_owned(),
                    task,
                    attempt: found.attempt,
                    seq,
                    pool: pool_of(&site),
                    units,
                    wall_ms,
                };
                Some(Input::Report {
                    site,
                    statuses: Vec::new(),
                    usage: vec![record],
                    at_ms: now_ms,
                })
            }
            12 | 13 => Some(Input::Heartbeat {
                site: site.to_owned(),
                expires_at_ms: now_ms + LEASE_MS,
            }),
            14 => {
                self.now_ms += 1 + self.below(60) as i64;
                Some(Input::LeaseCheck {
                    now_ms: self.now_ms,
                })
            }
            15 if self.below(3) == 0 => Some(Input::Cancel {
                job: id.to_owned(),
                at_ms: now_ms,
            }),
            16 if self.below(3) == 0 => Some(Input::Deadline {
                job: id.to_owned(),
                deadline_ms: now_ms,
                now_ms,
            }),
            17 if self.submitted < JOBS_MAX => {
                let (prefix, kind, tasks, retries) = JOBS[self.below(JOBS.len() as u64) as usize];
                self.submitted += 1;
                Some(Input::Submit {
                    job: format!("{prefix}{}", self.submitted),
                    kind,
                    tasks,
                    retries,
                })
            }
            _ => None,
        }
    }
}
