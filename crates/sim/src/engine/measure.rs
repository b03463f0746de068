//! What the twin counts while it runs. Everything here is an observer: it
//! reads what the machine and the engine decided and never decides
//! anything. Sums are formed in event order, so they are the same on every
//! run; money is integer micro-yuan, as billing will be.

use std::collections::BTreeMap;

use suanwang_core::spec::JobKind;
use suanwang_place::Kind;

/// Milliseconds in an hour.
pub const HOUR_MS: f64 = 3_600_000.0;

#[derive(Clone, Debug, Default)]
pub struct Measures {
    /// Job waits (submission to every task placed once), per job kind.
    pub waits_ms: [Vec<i64>; 3],
    /// Value of work that succeeded (bid x units x hours), yuan.
    pub value_yuan: f64,
    /// What all work run cost: list price and carbon of every unit-hour run,
    /// finished or not, and the data moved for every attempt, yuan.
    pub resource_cost_yuan: f64,
    /// Billed to tenants: accepted usage at each attempt's price
    /// (`core::price`: pay-as-clear), micro-yuan.
    pub charged_micro_yuan: i128,
    /// Data moved, at the attempts' transfer prices, micro-yuan.
    pub transfer_micro_yuan: i128,
    /// GB moved from data region to the pool's region, per (from, to).
    pub flows_gb: BTreeMap<(usize, usize), f64>,
    /// Unit-milliseconds of accepted usage (metering), and of attempts that
    /// ended with an accepted final report (what conservation compares).
    pub usage_unit_ms: u128,
    pub reported_unit_ms: u128,
    pub micro_scu_hours: u128,
    pub unrated_unit_ms: u128,
    /// Unit-milliseconds run by kind, finished or not.
    pub run_unit_ms: [u128; 3],
    pub energy_kwh: f64,
    pub carbon_kg: f64,
    /// Attempts lost with their site's lease, attempts requeued or
    /// cancelled with their gang, attempts that failed.
    pub tasks_lost: u64,
    pub tasks_requeued: u64,
    pub attempts_failed: u64,
    /// Unit-milliseconds of attempts that did not finish (lost, failed,
    /// requeued): work that has to run again.
    pub rerun_unit_ms: u128,
    pub reports_rejected: u64,
    pub tasks_placed: u64,
    /// Per reason: (job-rounds waiting, task-milliseconds waiting).
    pub waiting: BTreeMap<String, (u64, u128)>,
    pub rounds: u64,
    pub rounds_solved: u64,
    pub events: u64,
    pub welfare_per_h_sum: f64,
    /// Utilisation samples: times, and per series (region, kind) the units
    /// in use at each.
    pub sample_ms: Vec<i64>,
    pub series: Vec<(usize, Kind, u64)>,
    pub used: Vec<Vec<u64>>,
    /// (time, share of free GPU units no waiting task can use).
    pub fragmentation: Vec<(i64, f64)>,
    /// Price index per kind: (time, mean over the round's pools of list +
    /// clearing price), on sampled rounds.
    pub prices: [Vec<(i64, f64)>; 3],
}

pub fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Cpu => 0,
        Kind::Gpu => 1,
        Kind::Hpc => 2,
    }
}

pub fn job_kind_index(kind: JobKind) -> usize {
    match kind {
        JobKind::Batch => 0,
        JobKind::Gang => 1,
        JobKind::Service => 2,
    }
}

impl Measures {
    pub fn wait(&mut self, kind: JobKind, ms: i64) {
        self.waits_ms[job_kind_index(kind)].push(ms);
    }

    pub fn waiting(&mut self, reason: &str, tasks: u64, round_ms: i64) {
        self.waiting_many(reason, 1, tasks, round_ms);
    }

    /// `jobs` jobs with `tasks` tasks in all waited a round for `reason`.
    pub fn waiting_many(&mut self, reason: &str, jobs: u64, tasks: u64, round_ms: i64) {
        if let Some(entry) = self.waiting.get_mut(reason) {
            entry.0 += jobs;
            entry.1 += u128::from(tasks) * round_ms as u128;
        } else {
            self.waiting.insert(
                reason.to_owned(),
                (jobs, u128::from(tasks) * round_ms as u128),
            );
        }
    }
}

/// Nearest-rank percentile `p` (0–100) of sorted values; `None` if empty.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
