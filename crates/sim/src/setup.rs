//! A scenario resolved into the world the twin runs: the topology, sites
//! and pools (validated by the server's own `core::spec::validate_pools`),
//! the failures as times, and every job's arrival, sorted.

use std::path::Path;

use suanwang_api::PoolSpec;
use suanwang_core::topology::Topology;
use suanwang_place::gen::{generate, GenParams};
use suanwang_place::Kind;

use crate::error::SimError;
use crate::policy::Policy;
use crate::scenario::{self, limits, FailureKind, ScenarioFile, Source};
use crate::workload::{self, Arrival, START_MS};

#[derive(Clone, Debug, PartialEq)]
pub struct SimSite {
    /// `s00001`: the machine's key.
    pub id: String,
    pub name: String,
    pub region: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimPool {
    /// `p00001`: the machine's key.
    pub id: String,
    pub site: usize,
    pub name: String,
    pub region: usize,
    pub kind: Kind,
    pub family: String,
    pub device_model: String,
    pub capacity: u64,
    pub price_micro_yuan_per_unit_hour: i64,
    pub power_kw_per_unit: f64,
    pub pue: f64,
    pub grid_kg_co2_per_kwh: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Agent and tasks gone; the site comes back empty.
    Down,
    /// No heartbeats or reports; tasks keep running, reports queue.
    Partition,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub site: usize,
    pub fault: Fault,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// A workload's summary for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadInfo {
    pub name: String,
    pub source: Source,
    pub file: Option<String>,
    pub jobs: usize,
    pub skipped: Vec<(String, u64)>,
}

#[derive(Clone, Debug)]
pub struct Setup {
    pub name: String,
    pub seed: u64,
    pub topology: Topology,
    pub sites: Vec<SimSite>,
    pub pools: Vec<SimPool>,
    pub failures: Vec<Failure>,
    pub workloads: Vec<WorkloadInfo>,
    /// Sorted by (time, workload, line); job `i` is `arrivals[i]`.
    pub arrivals: Vec<Arrival>,
    pub policies: Vec<Policy>,
    pub round_ms: i64,
    pub lease_ms: i64,
    pub heartbeat_ms: i64,
    /// The latest simulated time.
    pub end_ms: i64,
}

/// The catalogue model standing for each of the generator's chip
/// families (a modelling choice: one common model per family).
fn generated_device(family: &str) -> &'static str {
    match family {
        "x86" => "intel-xeon-8480p",
        "arm" => "huawei-kunpeng-920-7260",
        "nvidia" => "nvidia-a800-sxm",
        "ascend" => "huawei-ascend-910b",
        "hygon" => "hygon-dcu-z100",
        "cambricon" => "cambricon-mlu590",
        "x86-fp64" => "hpc-2s-xeon-8480p",
        "arm-fp64" => "hpc-2s-kunpeng-920",
        _ => "",
    }
}

impl Setup {
    /// Reads the scenario at `path`; `seed` overrides the file's.
    pub fn read(path: &Path, seed: Option<u64>) -> Result<Setup, SimError> {
        let file = path.display().to_string();
        let text = crate::error::read_text(path, limits::SCENARIO_BYTES_MAX)?;
        let scenario = scenario::parse(&file, &text)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Setup::from_scenario(&file, dir, &scenario, seed)
    }

    pub fn from_scenario(
        file: &str,
        dir: &Path,
        s: &ScenarioFile,
        seed: Option<u64>,
    ) -> Result<Setup, SimError> {
        let seed = seed.unwrap_or(s.seed);
        let topology = if s.topology == "national" {
            Topology::national()
        } else {
            let path = dir.join(&s.topology);
            let name = path.display().to_string();
            let text = crate::error::read_text(&path, limits::SCENARIO_BYTES_MAX)?;
            let spec = serde_json::from_str(&text).map_err(|e| SimError::file(&name, e))?;
            Topology::validate(&spec).map_err(|e| SimError::file(&name, e))?
        };
        let mut sites = Vec::new();
        let mut pools = Vec::new();
        for (i, site) in s.site.iter().enumerate() {
            let region = topology
                .require_region(&format!("site[{i}].region"), &site.region)
                .map_err(|e| SimError::field(file, e.field, e.message))?;
            if s.site[..i].iter().any(|other| other.name == site.name) {
                return Err(SimError::field(
                    file,
                    format!("site[{i}].name"),
                    "duplicate site name",
                ));
            }
            let specs: Vec<PoolSpec> = site
                .pool
                .iter()
                .map(|p| PoolSpec {
                    name: p.name.clone(),
                    kind: p.kind,
                    family: p.family.clone(),
                    device_model: p.device_model.clone(),
                    capacity: p.units,
                    price_yuan_per_unit_hour: p.price_yuan_per_unit_hour,
                    power_kw_per_unit: p.power_kw_per_unit,
                    pue: p.pue.or(site.pue).expect("checked"),
                    grid_kg_co2_per_kwh: p
                        .grid_kg_co2_per_kwh
                        .or(site.grid_kg_co2_per_kwh)
                        .expect("checked"),
                })
                .collect();
            // The server's own pool validation; its paths become ours.
            let defs = suanwang_core::spec::validate_pools(&specs).map_err(|e| {
                let field = e.field.replacen("pools[", &format!("site[{i}].pool["), 1);
                let field = field.replace(".capacity", ".units");
                SimError::field(file, field, e.message)
            })?;
            let site_index = sites.len();
            sites.push(SimSite {
                id: format!("s{site_index:05}"),
                name: site.name.clone(),
                region,
            });
            for (def, spec) in defs.into_iter().zip(specs) {
                pools.push(SimPool {
                    id: format!("p{:05}", pools.len()),
                    site: site_index,
                    name: def.name,
                    region,
                    kind: def.kind,
                    family: def.family,
                    device_model: spec.device_model,
                    capacity: def.capacity,
                    price_micro_yuan_per_unit_hour: def.price_micro_yuan_per_unit_hour,
                    power_kw_per_unit: spec.power_kw_per_unit,
                    pue: spec.pue,
                    grid_kg_co2_per_kwh: spec.grid_kg_co2_per_kwh,
                });
            }
        }
        if let Some(g) = &s.generated_pools {
            add_generated(
                &topology,
                g.count,
                g.seed,
                g.capacity_scale,
                &mut sites,
                &mut pools,
            );
        }
        let mut failures = Vec::new();
        for (i, f) in s.failure.iter().enumerate() {
            let (from_ms, to_ms) = (START_MS + hours_ms(f.from_h), START_MS + hours_ms(f.to_h));
            let fault = match f.kind {
                FailureKind::Partition => Fault::Partition,
                FailureKind::SiteDown | FailureKind::RegionDown => Fault::Down,
            };
            let hit: Vec<usize> = match (&f.site, &f.region) {
                (Some(name), _) => {
                    let at = sites
                        .iter()
                        .position(|site| &site.name == name)
                        .ok_or_else(|| {
                            SimError::field(
                                file,
                                format!("failure[{i}].site"),
                                format!("no site named {name:?}"),
                            )
                        })?;
                    vec![at]
                }
                (None, Some(region)) => {
                    let r = topology
                        .require_region(&format!("failure[{i}].region"), region)
                        .map_err(|e| SimError::field(file, e.field, e.message))?;
                    sites
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.region == r)
                        .map(|(k, _)| k)
                        .collect()
                }
                (None, None) => unreachable!("checked"),
            };
            for site in hit {
                failures.push(Failure {
                    site,
                    fault,
                    from_ms,
                    to_ms,
                });
            }
        }
        check_failures(file, &failures)?;
        let mut workloads = Vec::new();
        let mut arrivals = Vec::new();
        for (i, w) in s.workload.iter().enumerate() {
            let loaded = workload::load(file, dir, i, w, &topology, seed)?;
            workloads.push(WorkloadInfo {
                name: loaded.name,
                source: loaded.source,
                file: loaded.file,
                jobs: loaded.arrivals.len(),
                skipped: loaded.skipped,
            });
            arrivals.extend(loaded.arrivals);
            if arrivals.len() as u64 > limits::JOBS_MAX {
                return Err(SimError::field(
                    file,
                    format!("workload[{i}]"),
                    format!("more than {} jobs in all", limits::JOBS_MAX),
                ));
            }
        }
        arrivals.sort_by_key(|a| (a.at_ms, a.workload, a.line));
        let policies = match &s.policies {
            None => Policy::ALL.to_vec(),
            Some(names) => Policy::parse_list(&names.join(","))
                .map_err(|e| SimError::field(file, "policies", e))?,
        };
        Ok(Setup {
            name: s.name.clone(),
            seed,
            topology,
            sites,
            pools,
            failures,
            workloads,
            arrivals,
            policies,
            round_ms: (s.round_s * 1_000.0).round() as i64,
            lease_ms: (s.lease_ttl_s * 1_000.0).round() as i64,
            heartbeat_ms: (s.heartbeat_s * 1_000.0).round() as i64,
            end_ms: START_MS + hours_ms(s.horizon_h),
        })
    }
}

pub fn hours_ms(hours: f64) -> i64 {
    (hours * 3_600_000.0).round() as i64
}

/// Two failures of one site may not overlap: a site is down or cut off
/// once at a time.
fn check_failures(file: &str, failures: &[Failure]) -> Result<(), SimError> {
    for (i, a) in failures.iter().enumerate() {
        for b in &failures[i + 1..] {
            if a.site == b.site && a.from_ms < b.to_ms && b.from_ms < a.to_ms {
                return Err(SimError::field(
                    file,
                    "failure",
                    "two failures of one site overlap",
                ));
            }
        }
    }
    Ok(())
}

/// Pools of the placement engine's national generator, one site per
/// generated site name.
pub fn add_generated(
    topology: &Topology,
    count: usize,
    seed: u64,
    capacity_scale: f64,
    sites: &mut Vec<SimSite>,
    pools: &mut Vec<SimPool>,
) {
    let problem = generate(&GenParams {
        pools: count,
        classes: 0,
        seed,
    });
    let mut names: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for pool in &problem.pools {
        let region_id = &problem.regions[pool.region].id;
        let region = topology
            .region(region_id)
            .expect("the generator's regions are the national topology's");
        let site = *names.entry(pool.site.clone()).or_insert_with(|| {
            sites.push(SimSite {
                id: format!("s{:05}", sites.len()),
                name: pool.site.clone(),
                region,
            });
            sites.len() - 1
        });
        let family = problem.families[pool.family].clone();
        pools.push(SimPool {
            id: format!("p{:05}", pools.len()),
            site,
            name: format!("{}-{}", pool.kind.as_str(), family),
            region,
            kind: pool.kind,
            device_model: generated_device(&family).to_owned(),
            family,
            capacity: ((pool.capacity as f64 * capacity_scale).round() as u64).max(1),
            price_micro_yuan_per_unit_hour: suanwang_core::money::micro_yuan(
                "price",
                pool.price_yuan_per_unit_hour,
            )
            .expect("generated prices are valid"),
            power_kw_per_unit: pool.power_kw_per_unit,
            pue: pool.pue,
            grid_kg_co2_per_kwh: pool.grid_kg_co2_per_kwh,
        });
    }
}
