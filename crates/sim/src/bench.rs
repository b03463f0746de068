//! The benchmark scenario of `suanwang sim bench`: the national topology,
//! `pools` pools from the engine's generator, and `jobs` synthetic jobs (a
//! mix of batch, gang and service work of every kind) arriving uniformly
//! over `days`, one round every `round_s`, the market policy.
//!
//! Tenants give up on a job not wholly placed within 24 hours (they
//! cancel it), so work that can never be placed does not pile up for a
//! year.
//!
//! Pool capacities are scaled per kind so that the offered load (unit-hours
//! asked for over unit-hours there are) is 70 %: a network that is busy
//! but keeps up, as one would run it.

use std::path::Path;

use crate::error::SimError;
use crate::policy::Policy;
use crate::scenario::{GeneratedPools, ScenarioFile, Source, WorkloadFile};
use crate::setup::Setup;

pub const LOAD: f64 = 0.7;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchParams {
    pub jobs: u64,
    pub pools: usize,
    pub days: f64,
    pub round_s: f64,
    pub seed: u64,
}

pub fn setup(p: &BenchParams) -> Result<Setup, SimError> {
    let workload: WorkloadFile = toml::from_str(&format!(
        "name = \"mixed\"\nsource = \"synthetic\"\njobs = {}\nspan_h = {}\nhours_mean = 1.0\npatience_h = 24\n",
        p.jobs,
        p.days * 24.0
    ))
    .map_err(|e| SimError::file("bench", e))?;
    assert_eq!(workload.source, Source::Synthetic);
    let scenario = ScenarioFile {
        name: format!("bench: {} jobs, {} pools, {} days", p.jobs, p.pools, p.days),
        description: String::new(),
        seed: p.seed,
        topology: "national".into(),
        round_s: p.round_s,
        lease_ttl_s: 30.0,
        heartbeat_s: 10.0,
        horizon_h: p.days * 24.0 + 24.0 * 7.0,
        policies: Some(vec![Policy::Market.as_str().into()]),
        site: Vec::new(),
        generated_pools: Some(GeneratedPools {
            count: p.pools,
            seed: p.seed,
            capacity_scale: 1.0,
        }),
        failure: Vec::new(),
        workload: vec![workload],
    };
    let mut setup = Setup::from_scenario("bench", Path::new("."), &scenario, None)?;
    // Scale each kind's pools to the load.
    let span_ms = (p.days * 86_400_000.0).max(1.0);
    for (k, kind) in suanwang_place::Kind::ALL.into_iter().enumerate() {
        let demand: f64 = setup
            .arrivals
            .iter()
            .filter(|a| a.def.resource_kind == kind)
            .map(|a| (a.def.tasks * a.def.units) as f64 * a.duration_ms as f64)
            .sum();
        let capacity: f64 = setup
            .pools
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.capacity as f64)
            .sum();
        if capacity <= 0.0 || demand <= 0.0 {
            continue;
        }
        let scale = demand / span_ms / LOAD / capacity;
        for pool in setup.pools.iter_mut().filter(|p| p.kind == kind) {
            pool.capacity = ((pool.capacity as f64 * scale).round() as u64).max(1);
        }
        let _ = k;
    }
    Ok(setup)
}
