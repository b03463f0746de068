//! The report: every number of every policy's run (`report.json`, schema
//! `suanwang.sim-report/v1`, fields in a fixed order, no wall-clock times,
//! so the same scenario and seed give the same bytes), and a
//! self-contained HTML page of it ([`html`]).

use serde::Serialize;
use suanwang_core::lifecycle::JobState;
use suanwang_place::Kind;

use crate::engine::measure::{percentile, HOUR_MS};
use crate::engine::Outcome;
use crate::setup::{Fault, Setup};
use crate::workload::geo::RULES;
use crate::workload::START_MS;

pub mod html;

pub const SCHEMA: &str = "suanwang.sim-report/v1";

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub schema: &'static str,
    pub scenario: String,
    pub seed: u64,
    pub regions: usize,
    pub sites: usize,
    pub pools: usize,
    pub capacity_units: PerKind<u64>,
    pub round_s: f64,
    pub lease_ttl_s: f64,
    pub heartbeat_s: f64,
    pub workloads: Vec<WorkloadJson>,
    /// How jobs got what their traces do not carry.
    pub assignment_rules: Vec<&'static str>,
    pub failures: Vec<FailureJson>,
    pub policies: Vec<PolicyJson>,
    /// Region coordinates, for the flow map.
    pub region_coordinates: Vec<RegionJson>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct PerKind<T> {
    pub cpu: T,
    pub gpu: T,
    pub hpc: T,
}

impl<T: Copy> PerKind<T> {
    fn from_fn(f: impl Fn(usize) -> T) -> PerKind<T> {
        PerKind {
            cpu: f(0),
            gpu: f(1),
            hpc: f(2),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkloadJson {
    pub name: String,
    pub source: &'static str,
    /// The file's name (not its path: the report is the same wherever the
    /// scenario lies).
    pub file: Option<String>,
    pub jobs: usize,
    pub skipped: Vec<Skipped>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Skipped {
    pub reason: String,
    pub lines: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FailureJson {
    pub site: String,
    pub kind: &'static str,
    pub from_h: f64,
    pub to_h: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RegionJson {
    pub id: String,
    pub lat_deg: f64,
    pub lon_deg: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PolicyJson {
    pub policy: &'static str,
    pub jobs: Jobs,
    /// Value of finished work minus the list price, carbon and data moved
    /// of all work run (finished or not), yuan.
    pub welfare_yuan: f64,
    pub value_yuan: f64,
    pub resource_cost_yuan: f64,
    /// What tenants pay: metered usage at each attempt's price (pay-as-clear,
    /// `core::price`) plus data moved. No voucher programmes yet: after
    /// vouchers equals before.
    pub tenant_cost_yuan: f64,
    pub compute_charge_yuan: f64,
    pub transfer_cost_yuan: f64,
    pub wait_s: Vec<Wait>,
    pub unit_hours: UnitHours,
    pub utilisation: Utilisation,
    pub fragmentation: Fragmentation,
    pub unplaced: Unplaced,
    pub data: Data,
    pub energy_kwh: f64,
    pub carbon_kg_co2e: f64,
    pub failures: FailureCost,
    /// Mean over the sampled rounds of the mean market price (list +
    /// clearing) of the round's pools. Only the market clears: the other
    /// policies' is the list price.
    pub price_yuan_per_unit_hour: PerKind<Option<f64>>,
    pub rounds: u64,
    pub rounds_solved: u64,
    pub events: u64,
    pub tasks_placed: u64,
    pub end_h: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Jobs {
    pub arrived: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    /// Of the cancelled: not finished when the run ended.
    pub cut_at_end: u64,
    /// Of the cancelled: by their tenants, tired of waiting (`patience_h`).
    pub gave_up: u64,
    pub not_arrived: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Wait {
    pub kind: &'static str,
    pub jobs: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub mean: Option<f64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UnitHours {
    /// Run, finished or not.
    pub run: PerKind<f64>,
    /// Accepted usage records (metering).
    pub metered: f64,
    /// Attempts whose final report was accepted.
    pub reported: f64,
    pub scu_hours: f64,
    pub unrated: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Utilisation {
    pub mean: PerKind<Option<f64>>,
    pub times_h: Vec<f64>,
    pub series: Vec<Series>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Series {
    pub region: String,
    pub kind: &'static str,
    pub capacity: u64,
    pub used: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Fragmentation {
    /// Mean over sampled rounds with GPU work waiting and GPUs free.
    pub mean: Option<f64>,
    pub samples: usize,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Unplaced {
    /// While the run went on: job-rounds and task-hours waiting, by reason.
    pub waiting: Vec<WaitReason>,
    /// Jobs not finished at the end, by their last reason.
    pub at_end: Vec<EndReason>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WaitReason {
    pub reason: String,
    pub job_rounds: u64,
    pub task_hours: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EndReason {
    pub reason: String,
    pub jobs: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Data {
    pub gb_moved: f64,
    pub cost_yuan: f64,
    pub flows: Vec<Flow>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Flow {
    pub from: String,
    pub to: String,
    pub gb: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FailureCost {
    pub tasks_lost: u64,
    pub tasks_requeued: u64,
    pub attempts_failed: u64,
    pub unit_hours_rerun: f64,
    pub reports_rejected: u64,
}

/// Rounded to 6 decimals: enough for every measure, and short.
fn r6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn hours(ms: i64) -> f64 {
    r6((ms - START_MS) as f64 / HOUR_MS)
}

pub fn build(setup: &Setup, outcomes: &[Outcome]) -> Report {
    let capacity = PerKind::from_fn(|k| {
        setup
            .pools
            .iter()
            .filter(|p| p.kind == Kind::ALL[k])
            .map(|p| p.capacity)
            .sum()
    });
    Report {
        schema: SCHEMA,
        scenario: setup.name.clone(),
        seed: setup.seed,
        regions: setup.topology.regions.len(),
        sites: setup.sites.len(),
        pools: setup.pools.len(),
        capacity_units: capacity,
        round_s: setup.round_ms as f64 / 1e3,
        lease_ttl_s: setup.lease_ms as f64 / 1e3,
        heartbeat_s: setup.heartbeat_ms as f64 / 1e3,
        workloads: setup
            .workloads
            .iter()
            .map(|w| WorkloadJson {
                name: w.name.clone(),
                source: w.source.as_str(),
                file: w.file.as_ref().map(|f| {
                    std::path::Path::new(f)
                        .file_name()
                        .map_or(f.clone(), |n| n.to_string_lossy().into_owned())
                }),
                jobs: w.jobs,
                skipped: w
                    .skipped
                    .iter()
                    .map(|(reason, lines)| Skipped {
                        reason: reason.clone(),
                        lines: *lines,
                    })
                    .collect(),
            })
            .collect(),
        assignment_rules: RULES.to_vec(),
        failures: setup
            .failures
            .iter()
            .map(|f| FailureJson {
                site: setup.sites[f.site].name.clone(),
                kind: match f.fault {
                    Fault::Down => "down",
                    Fault::Partition => "partition",
                },
                from_h: hours(f.from_ms),
                to_h: hours(f.to_ms),
            })
            .collect(),
        policies: outcomes.iter().map(|o| policy_json(setup, o)).collect(),
        region_coordinates: setup
            .topology
            .regions
            .iter()
            .map(|r| RegionJson {
                id: r.id.clone(),
                lat_deg: r.lat_deg,
                lon_deg: r.lon_deg,
            })
            .collect(),
    }
}

fn policy_json(setup: &Setup, o: &Outcome) -> PolicyJson {
    let m = &o.measures;
    let count = |state: JobState| o.finals.iter().filter(|s| **s == state).count();
    let uh = |unit_ms: u128| r6(unit_ms as f64 / HOUR_MS);
    let waits = ["batch", "gang", "service"]
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let mut v = m.waits_ms[k].clone();
            v.sort_unstable();
            let s = |p: f64| percentile(&v, p).map(|ms| r6(ms as f64 / 1e3));
            Wait {
                kind,
                jobs: v.len(),
                p50: s(50.0),
                p95: s(95.0),
                p99: s(99.0),
                mean: (!v.is_empty())
                    .then(|| r6(v.iter().sum::<i64>() as f64 / v.len() as f64 / 1e3)),
            }
        })
        .collect();
    let mean_util = PerKind::from_fn(|k| {
        let kind = Kind::ALL[k];
        let capacity: u64 = m.series.iter().filter(|s| s.1 == kind).map(|s| s.2).sum();
        if capacity == 0 || m.sample_ms.is_empty() {
            return None;
        }
        let used: u128 = m
            .series
            .iter()
            .zip(&m.used)
            .filter(|(s, _)| s.1 == kind)
            .flat_map(|(_, u)| u.iter().map(|&x| u128::from(x)))
            .sum();
        Some(r6(
            used as f64 / (capacity as f64 * m.sample_ms.len() as f64)
        ))
    });
    let regions = &setup.topology.regions;
    let charge = m.charged_micro_yuan as f64 / 1e6;
    let transfer = m.transfer_micro_yuan as f64 / 1e6;
    let frag_mean = (!m.fragmentation.is_empty()).then(|| {
        r6(m.fragmentation.iter().map(|(_, f)| f).sum::<f64>() / m.fragmentation.len() as f64)
    });
    let price = |k: usize| {
        let v = &m.prices[k];
        (!v.is_empty()).then(|| r6(v.iter().map(|(_, p)| p).sum::<f64>() / v.len() as f64))
    };
    PolicyJson {
        policy: o.policy.as_str(),
        jobs: Jobs {
            arrived: o.finals.len(),
            succeeded: count(JobState::Succeeded),
            failed: count(JobState::Failed),
            cancelled: count(JobState::Cancelled),
            cut_at_end: o.cut_at_end,
            gave_up: o.gave_up,
            not_arrived: o.not_arrived,
        },
        welfare_yuan: r6(m.value_yuan - m.resource_cost_yuan - transfer),
        value_yuan: r6(m.value_yuan),
        resource_cost_yuan: r6(m.resource_cost_yuan),
        tenant_cost_yuan: r6(charge + transfer),
        compute_charge_yuan: r6(charge),
        transfer_cost_yuan: r6(transfer),
        wait_s: waits,
        unit_hours: UnitHours {
            run: PerKind::from_fn(|k| uh(m.run_unit_ms[k])),
            metered: uh(m.usage_unit_ms),
            reported: uh(m.reported_unit_ms),
            scu_hours: r6(m.micro_scu_hours as f64 / 1e6),
            unrated: uh(m.unrated_unit_ms),
        },
        utilisation: Utilisation {
            mean: mean_util,
            times_h: m.sample_ms.iter().map(|&t| hours(t)).collect(),
            series: m
                .series
                .iter()
                .zip(&m.used)
                .map(|((r, k, c), u)| Series {
                    region: regions[*r].id.clone(),
                    kind: k.as_str(),
                    capacity: *c,
                    used: u.clone(),
                })
                .collect(),
        },
        fragmentation: Fragmentation {
            mean: frag_mean,
            samples: m.fragmentation.len(),
        },
        unplaced: Unplaced {
            waiting: m
                .waiting
                .iter()
                .map(|(reason, (rounds, task_ms))| WaitReason {
                    reason: reason.clone(),
                    job_rounds: *rounds,
                    task_hours: r6(*task_ms as f64 / HOUR_MS),
                })
                .collect(),
            at_end: o
                .cut_reasons
                .iter()
                .map(|(reason, jobs)| EndReason {
                    reason: reason.clone(),
                    jobs: *jobs,
                })
                .collect(),
        },
        data: Data {
            gb_moved: r6(m.flows_gb.values().sum()),
            cost_yuan: r6(transfer),
            flows: m
                .flows_gb
                .iter()
                .map(|((from, to), gb)| Flow {
                    from: regions[*from].id.clone(),
                    to: regions[*to].id.clone(),
                    gb: r6(*gb),
                })
                .collect(),
        },
        energy_kwh: r6(m.energy_kwh),
        carbon_kg_co2e: r6(m.carbon_kg),
        failures: FailureCost {
            tasks_lost: m.tasks_lost,
            tasks_requeued: m.tasks_requeued,
            attempts_failed: m.attempts_failed,
            unit_hours_rerun: uh(m.rerun_unit_ms),
            reports_rejected: m.reports_rejected,
        },
        price_yuan_per_unit_hour: PerKind::from_fn(price),
        rounds: m.rounds,
        rounds_solved: m.rounds_solved,
        events: m.events,
        tasks_placed: m.tasks_placed,
        end_h: hours(o.end_ms),
    }
}

/// The report as JSON text (pretty, with a final newline).
pub fn to_json(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(report).expect("a report serialises");
    text.push('\n');
    text
}
