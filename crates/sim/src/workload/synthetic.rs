//! The seeded synthetic generator: a mix of batch, gang and service jobs
//! of CPU, GPU and HPC work, arriving uniformly over `span_h`.
//!
//! Shapes (each drawn from the workload's own ChaCha8 stream):
//! - kind by `mix` (default batch 0.6, gang 0.2, service 0.2), resource by
//!   `resources` (default cpu 0.5, gpu 0.4, hpc 0.1);
//! - tasks: batch 1–16, gang 2–8, service 1–4 replicas;
//! - units per task: cpu 1, 2, 4, 8 or 16 cores; gpu 1, 2, 4 or 8
//!   accelerators; hpc 1–4 nodes;
//! - run time exponential with mean `hours_mean` (default 2 h), at least a
//!   minute, at most 100 times the mean;
//! - an attempt fails at its end with probability `fail_share`.
//!
//! Geography, circles and bids are then [`super::geo`]'s rules.

use rand::Rng;
use suanwang_core::spec::JobKind;
use suanwang_place::Kind;

use super::{Loaded, Qos, Raw};
use crate::scenario::{KindShares, ResourceShares, WorkloadFile};

pub fn generate(w: &WorkloadFile, seed: u64) -> Loaded {
    let mut rng = super::geo::rng(seed);
    let jobs = w
        .jobs
        .expect("checked: a synthetic workload says how many jobs");
    let span_s = w.span_h.unwrap_or(24.0) * 3_600.0;
    let mix = w.mix.clone().unwrap_or(KindShares {
        batch: 0.6,
        gang: 0.2,
        service: 0.2,
    });
    let resources = w.resources.clone().unwrap_or(ResourceShares {
        cpu: 0.5,
        gpu: 0.4,
        hpc: 0.1,
    });
    let hours_mean = w.hours_mean.unwrap_or(2.0);
    let mut at: Vec<f64> = (0..jobs).map(|_| rng.random::<f64>() * span_s).collect();
    at.sort_by(f64::total_cmp);
    let mut raws = Vec::with_capacity(at.len());
    for at_s in at {
        let kind = draw(
            &mut rng,
            &[
                (JobKind::Batch, mix.batch),
                (JobKind::Gang, mix.gang),
                (JobKind::Service, mix.service),
            ],
        );
        let resource = draw(
            &mut rng,
            &[
                (Kind::Cpu, resources.cpu),
                (Kind::Gpu, resources.gpu),
                (Kind::Hpc, resources.hpc),
            ],
        );
        let mut raw = Raw::new(0, at_s, kind, resource);
        raw.tasks = match kind {
            JobKind::Batch => rng.random_range(1..=16),
            JobKind::Gang => rng.random_range(2..=8),
            JobKind::Service => rng.random_range(1..=4),
        };
        raw.units = match resource {
            Kind::Cpu => 1 << rng.random_range(0..=4),
            Kind::Gpu => 1 << rng.random_range(0..=3),
            Kind::Hpc => rng.random_range(1..=4),
        };
        let u: f64 = rng.random::<f64>();
        let hours = (-(1.0 - u).ln() * hours_mean).clamp(1.0 / 60.0, hours_mean * 100.0);
        raw.duration_s = (hours * 3_600.0).round();
        raw.fail_share = w.fail_share;
        raw.qos = if kind == JobKind::Service {
            Qos::Latency
        } else {
            Qos::Normal
        };
        raws.push(raw);
    }
    Loaded {
        raws,
        skipped: Vec::new(),
    }
}

/// One of `items` by weight.
fn draw<T: Copy>(rng: &mut impl Rng, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random::<f64>() * total;
    for (item, weight) in items {
        if pick < *weight {
            return *item;
        }
        pick -= weight;
    }
    items
        .iter()
        .rev()
        .find(|(_, w)| *w > 0.0)
        .expect("shares add up to more than 0")
        .0
}
