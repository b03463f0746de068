//! The rules that give trace jobs what the traces do not carry. Traces
//! come from one cluster each and know nothing of China's geography; the
//! twin needs an origin, a data region, a latency circle, a residency rule
//! and a bid for every job. Each is drawn here, from one seeded ChaCha8
//! stream per workload, in job order, so the same scenario and seed give
//! the same jobs on every machine. A value the source gives (our own CSV
//! can give all of them) is kept.
//!
//! The rules, also listed in every report ([`RULES`]):
//!
//! 1. **Origin**: uniform among the workload's `origins`; by default drawn
//!    from the big demand cities weighted by the region table's demand
//!    weights (`crates/place/data/regions.csv`: roughly GDP).
//! 2. **Data region**: the origin with probability `data_local_share`
//!    (0.7), else uniform over every region of the topology.
//! 3. **Data size**: the workload's `data_gb`, else it grows with the
//!    work: per task-hour cpu 0.5 GB, gpu 5 GB, hpc 2 GB, at most 100 GB
//!    ([`default_data_gb`]). A constant size would make every short task's
//!    transfer cost per hour absurd.
//! 4. **Latency circle**: the workload's `latency_ms_max`; else 20 ms for
//!    latency-sensitive work (services, Alibaba `LS` pods) — the national
//!    network's target between hubs — and none for the rest.
//! 5. **Residency**: with probability `residency_share` (0) the job may
//!    run only in regions within `residency_ms` (10 ms) of its data region.
//! 6. **Bid**: the kind's reference price (cpu 0.09, gpu 8.0, hpc 11.0
//!    yuan per unit-hour: the generator's reference list prices) times a
//!    factor uniform in `bid_factor` ([0.8, 2.5]).
//! 7. **Retries**: the workload's `retries` (2); service replicas 0, so a
//!    replica ends with its demand window.
//! 8. **Estimate**: the scheduler is told the true run time (`hours`), at
//!    least one second.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use suanwang_api::{JobSpec, ResourceKind, ResourcesSpec, RunSpec};
use suanwang_core::spec::JobKind;
use suanwang_core::topology::Topology;
use suanwang_place::Kind;

use super::{Qos, Raw};
use crate::scenario::WorkloadFile;

/// The rules in words, for the report.
pub const RULES: [&str; 8] = [
    "origin: uniform among the workload's origins, by default the big demand cities weighted by demand (regions.csv demand_weight)",
    "data region: the origin with probability data_local_share (default 0.7), else uniform over all regions",
    "data size: the workload's data_gb, else per task-hour cpu 0.5 GB, gpu 5 GB, hpc 2 GB, at most 100 GB (inference services: none)",
    "latency circle: the workload's latency_ms_max, else 20 ms for latency-sensitive work (services, Alibaba LS pods), none for the rest",
    "residency: with probability residency_share (default 0) only regions within residency_ms (default 10 ms) of the data region",
    "bid: reference price (cpu 0.09, gpu 8.0, hpc 11.0 yuan/unit-hour) x uniform factor in bid_factor (default [0.8, 2.5])",
    "retries: the workload's retries (default 2); service replicas 0, so a replica ends with its window",
    "estimate: the scheduler is told the true run time, at least one second",
];

/// Default origins and their weights (regions.csv `demand_weight`).
pub const DEFAULT_ORIGINS: [(&str, f64); 11] = [
    ("shanghai", 47.0),
    ("beijing", 44.0),
    ("shenzhen", 35.0),
    ("guangzhou", 30.0),
    ("chongqing", 30.0),
    ("suzhou", 25.0),
    ("chengdu", 22.0),
    ("hangzhou", 20.0),
    ("wuhan", 20.0),
    ("tianjin", 17.0),
    ("nanjing", 17.0),
];

/// Reference prices, yuan per unit-hour.
pub fn reference_price(kind: Kind) -> f64 {
    match kind {
        Kind::Cpu => 0.09,
        Kind::Gpu => 8.0,
        Kind::Hpc => 11.0,
    }
}

/// GB of input for a task of `kind` running `hours`.
pub fn default_data_gb(kind: Kind, hours: f64) -> f64 {
    let per_hour = match kind {
        Kind::Cpu => 0.5,
        Kind::Gpu => 5.0,
        Kind::Hpc => 2.0,
    };
    ((per_hour * hours * 1e3).round() / 1e3).min(100.0)
}

/// The circle of latency-sensitive work when the workload sets none.
pub const LATENCY_SENSITIVE_MS: f64 = 20.0;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// One workload's rules, resolved against the topology.
#[derive(Clone, Debug)]
pub struct Rules {
    origins: Vec<(String, f64)>,
    origin_weight: f64,
    regions: Vec<String>,
    data_local_share: f64,
    data_gb: Option<f64>,
    latency_ms_max: Option<f64>,
    residency_share: f64,
    /// Per data region, the regions within `residency_ms`.
    resident: BTreeMap<String, Vec<String>>,
    bid_factor: [f64; 2],
    families: Vec<String>,
    retries: u32,
}

impl Rules {
    /// `Err((field, message))` when the workload names unknown regions.
    pub fn new(w: &WorkloadFile, topology: &Topology) -> Result<Rules, (&'static str, String)> {
        let origins: Vec<(String, f64)> = match &w.origins {
            Some(list) => {
                if list.is_empty() {
                    return Err(("origins", "name at least one region".into()));
                }
                for id in list {
                    if topology.region(id).is_none() {
                        return Err(("origins", format!("unknown region {id:?}")));
                    }
                }
                list.iter().map(|id| (id.clone(), 1.0)).collect()
            }
            None => DEFAULT_ORIGINS
                .iter()
                .filter(|(id, _)| topology.region(id).is_some())
                .map(|(id, w)| ((*id).to_owned(), *w))
                .collect(),
        };
        if origins.is_empty() {
            return Err((
                "origins",
                "none of the default origins is in this topology: name them".into(),
            ));
        }
        let regions: Vec<String> = topology.regions.iter().map(|r| r.id.clone()).collect();
        let mut resident = BTreeMap::new();
        if w.residency_share > 0.0 {
            let n = regions.len();
            for (i, from) in regions.iter().enumerate() {
                let near: Vec<String> = (0..n)
                    .filter(|&j| topology.latency_ms[i * n + j] <= w.residency_ms)
                    .map(|j| regions[j].clone())
                    .collect();
                resident.insert(from.clone(), near);
            }
        }
        Ok(Rules {
            origin_weight: origins.iter().map(|(_, w)| w).sum(),
            origins,
            regions,
            data_local_share: w.data_local_share,
            data_gb: w.data_gb,
            latency_ms_max: w.latency_ms_max,
            residency_share: w.residency_share,
            resident,
            bid_factor: w.bid_factor,
            families: w.families.clone(),
            retries: w.retries,
        })
    }

    /// The job spec of `raw` (every rule applied, in the order of the
    /// module doc, each drawing from `rng` whether or not the source gave
    /// the value, so one job's given fields do not shift the next job's
    /// draws), and its real run time in milliseconds.
    pub fn assign(
        &self,
        raw: &Raw,
        at_ms: i64,
        rng: &mut ChaCha8Rng,
        workload: &str,
    ) -> (JobSpec, i64) {
        let mut pick = rng.random::<f64>() * self.origin_weight;
        let mut origin = &self.origins[self.origins.len() - 1].0;
        for (id, weight) in &self.origins {
            if pick < *weight {
                origin = id;
                break;
            }
            pick -= weight;
        }
        let origin = raw.origin.clone().unwrap_or_else(|| origin.clone());
        let local = rng.random::<f64>() < self.data_local_share;
        let other = &self.regions[rng.random_range(0..self.regions.len())];
        let data_region = raw.data_region.clone().unwrap_or_else(|| {
            if local {
                origin.clone()
            } else {
                other.clone()
            }
        });
        let data_gb = raw
            .data_gb
            .or(self.data_gb)
            .unwrap_or(default_data_gb(raw.resource, raw.duration_s / 3_600.0));
        let latency_ms_max = match raw.latency_ms_max {
            Some(given) => given,
            None => self.latency_ms_max.or(match raw.qos {
                Qos::Latency => Some(LATENCY_SENSITIVE_MS),
                Qos::Normal | Qos::BestEffort => None,
            }),
        };
        let resident = rng.random::<f64>() < self.residency_share;
        let allowed_regions = raw.allowed_regions.clone().or_else(|| {
            resident
                .then(|| self.resident.get(&data_region).cloned())
                .flatten()
        });
        let factor = rng.random_range(self.bid_factor[0]..=self.bid_factor[1]);
        let bid = raw
            .bid_yuan_per_unit_hour
            .unwrap_or(reference_price(raw.resource) * factor);
        let retries = match raw.retries {
            Some(r) => r,
            None if raw.kind == JobKind::Service => 0,
            None => self.retries,
        };
        let duration_ms = ((raw.duration_s * 1_000.0).round() as i64).max(1_000);
        let hours = duration_ms as f64 / 3_600_000.0;
        let deadline = raw
            .deadline_h
            .map(|h| suanwang_core::deadline::format_ms(at_ms + (h * 3_600_000.0) as i64));
        let spec = JobSpec {
            name: format!("{workload}-{}", raw.line),
            kind: match raw.kind {
                JobKind::Batch => suanwang_api::JobKind::Batch,
                JobKind::Gang => suanwang_api::JobKind::Gang,
                JobKind::Service => suanwang_api::JobKind::Service,
            },
            tasks: raw.tasks,
            resources: ResourcesSpec {
                kind: match raw.resource {
                    Kind::Cpu => ResourceKind::Cpu,
                    Kind::Gpu => ResourceKind::Gpu,
                    Kind::Hpc => ResourceKind::Hpc,
                },
                units: raw.units,
                families: raw
                    .families
                    .clone()
                    .unwrap_or_else(|| self.families.clone()),
                memory_gib: 0.0,
            },
            run: RunSpec {
                command: "sim".into(),
                args: vec![],
                env: BTreeMap::new(),
                slurm_script: None,
            },
            hours,
            bid_yuan_per_unit_hour: (bid * 1e6).round() / 1e6,
            origin,
            latency_ms_max,
            data_region: Some(data_region),
            data_gb,
            allowed_regions,
            deadline,
            retries,
        };
        (spec, duration_ms)
    }
}
