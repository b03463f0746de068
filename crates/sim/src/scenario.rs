//! The scenario file (`suanwang.sim-scenario/v1`, TOML): what network, what
//! work, what goes wrong. The schema is documented in
//! `examples/sim/README.md`; this module is its reader.
//!
//! *Strict.* Every table says `deny_unknown_fields`, so a misspelt key is an
//! error naming it rather than a silently ignored default; every number has
//! a range ([`limits`]); every error names the field by its path
//! (`site[1].pool[0].units`). A scenario either reads whole or not at all.
//!
//! *Rationale.* A digital twin is only as good as its input: a typo that
//! quietly turned 512 GPUs into the default would make every number in the
//! report wrong while looking right.

use serde::Deserialize;

use crate::error::SimError;

/// Limits on everything a scenario may ask for.
pub mod limits {
    pub const SCENARIO_BYTES_MAX: u64 = 1024 * 1024;
    pub const TRACE_BYTES_MAX: u64 = 64 * 1024 * 1024;
    pub const SITES_MAX: usize = 10_000;
    pub const POOLS_MAX: usize = 10_000;
    pub const FAILURES_MAX: usize = 1_000;
    pub const WORKLOADS_MAX: usize = 64;
    /// Jobs over all workloads of one scenario.
    pub const JOBS_MAX: u64 = 2_000_000;
    /// Two simulated years.
    pub const HORIZON_H_MAX: f64 = 2.0 * 366.0 * 24.0;
    pub const ROUND_S_MIN: f64 = 1.0;
    pub const ROUND_S_MAX: f64 = 86_400.0;
    pub const LEASE_TTL_S_MAX: f64 = 86_400.0;
    pub const NAME_CHARS_MAX: usize = 128;
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The seed of every random rule; `--seed` overrides it.
    #[serde(default)]
    pub seed: u64,
    /// `"national"` (the default: the built-in national topology) or a path
    /// to a `TopologySpec` JSON file, relative to the scenario.
    #[serde(default = "national")]
    pub topology: String,
    /// Seconds between scheduling rounds.
    #[serde(default = "round_s")]
    pub round_s: f64,
    /// How long a heartbeat's lease runs.
    #[serde(default = "lease_ttl_s")]
    pub lease_ttl_s: f64,
    /// How often each site's agent heartbeats.
    #[serde(default = "heartbeat_s")]
    pub heartbeat_s: f64,
    /// Simulated time stops here at the latest; work still unfinished is
    /// cancelled and reported as such.
    #[serde(default = "horizon_h")]
    pub horizon_h: f64,
    /// Policies to compare when the command line names none.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    #[serde(default)]
    pub site: Vec<SiteFile>,
    /// Pools drawn by the placement engine's national generator, on top of
    /// (or instead of) the `site` tables.
    #[serde(default)]
    pub generated_pools: Option<GeneratedPools>,
    #[serde(default)]
    pub failure: Vec<FailureFile>,
    #[serde(default)]
    pub workload: Vec<WorkloadFile>,
}

fn national() -> String {
    "national".into()
}
fn round_s() -> f64 {
    300.0
}
fn lease_ttl_s() -> f64 {
    30.0
}
fn heartbeat_s() -> f64 {
    10.0
}
fn horizon_h() -> f64 {
    366.0 * 24.0
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    pub name: String,
    pub region: String,
    /// Defaults for the site's pools.
    #[serde(default)]
    pub pue: Option<f64>,
    #[serde(default)]
    pub grid_kg_co2_per_kwh: Option<f64>,
    #[serde(default)]
    pub pool: Vec<PoolFile>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    pub name: String,
    /// `cpu`, `gpu` or `hpc`.
    pub kind: suanwang_api::ResourceKind,
    pub family: String,
    /// A model of the metering catalogue (`suanwang meter catalogue`); an
    /// unknown one is metered at 0 SCU and flagged, as the server does.
    #[serde(default)]
    pub device_model: String,
    pub units: u64,
    pub price_yuan_per_unit_hour: f64,
    pub power_kw_per_unit: f64,
    #[serde(default)]
    pub pue: Option<f64>,
    #[serde(default)]
    pub grid_kg_co2_per_kwh: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedPools {
    pub count: usize,
    #[serde(default)]
    pub seed: u64,
    /// Multiplies every generated capacity (at least 1 unit stays).
    #[serde(default = "one")]
    pub capacity_scale: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The site's agent and its running tasks are gone from `from_h` to
    /// `to_h`; it comes back empty.
    SiteDown,
    /// Every site of the region is down.
    RegionDown,
    /// The site's agent cannot reach the control plane: no heartbeats, no
    /// reports (they queue in its outbox), but its tasks keep running.
    Partition,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureFile {
    pub kind: FailureKind,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub from_h: f64,
    pub to_h: f64,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The seeded generator: batch, gang and service jobs.
    Synthetic,
    /// Our own CSV (`examples/sim/README.md`).
    Csv,
    /// Alibaba GPU trace 2023, `openb_pod_list_*.csv`.
    Alibaba,
    /// Standard Workload Format of the Parallel Workloads Archive.
    Swf,
    /// Azure LLM inference trace: requests turned into service demand.
    Azure,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Synthetic => "synthetic",
            Source::Csv => "csv",
            Source::Alibaba => "alibaba",
            Source::Swf => "swf",
            Source::Azure => "azure",
        }
    }
}

/// Shares of something, by name; normalised when used.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindShares {
    #[serde(default)]
    pub batch: f64,
    #[serde(default)]
    pub gang: f64,
    #[serde(default)]
    pub service: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceShares {
    #[serde(default)]
    pub cpu: f64,
    #[serde(default)]
    pub gpu: f64,
    #[serde(default)]
    pub hpc: f64,
}

/// One workload: where its jobs come from, and the seeded rules that give
/// them what the trace does not carry (origins, data, circles, bids).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    pub name: String,
    pub source: Source,
    /// The trace, relative to the scenario file (not for `synthetic`).
    #[serde(default)]
    pub file: Option<String>,
    /// `synthetic`: how many jobs. Traces: at most this many (the first).
    #[serde(default)]
    pub jobs: Option<u64>,
    /// Shifts every arrival (hours after the start of the simulation).
    #[serde(default)]
    pub start_h: f64,
    /// `synthetic`: arrivals spread uniformly over this many hours.
    #[serde(default)]
    pub span_h: Option<f64>,
    /// Traces: trace seconds are multiplied by this (0.5 = twice as fast).
    #[serde(default = "one")]
    pub time_scale: f64,
    /// `synthetic`: shares of batch, gang and service jobs.
    #[serde(default)]
    pub mix: Option<KindShares>,
    /// `synthetic`: shares of cpu, gpu and hpc jobs.
    #[serde(default)]
    pub resources: Option<ResourceShares>,
    /// `synthetic`: mean task hours (exponential; 1 minute at least).
    #[serde(default)]
    pub hours_mean: Option<f64>,
    /// `synthetic`, `csv`: the share of attempts that fail.
    #[serde(default)]
    pub fail_share: f64,
    #[serde(default = "tenant")]
    pub tenant: String,
    /// Origins drawn from (uniformly); default: the big demand cities,
    /// weighted by the region table's demand weights.
    #[serde(default)]
    pub origins: Option<Vec<String>>,
    /// The share of jobs whose data is at their origin; the others' data is
    /// in a uniformly drawn region.
    #[serde(default = "data_local_share")]
    pub data_local_share: f64,
    /// GB of input data per task (default per source).
    #[serde(default)]
    pub data_gb: Option<f64>,
    /// The latency circle of every job of the workload (ms from origin);
    /// default per source (see [`crate::workload::geo`]).
    #[serde(default)]
    pub latency_ms_max: Option<f64>,
    /// The share of jobs whose data may not leave the regions within
    /// `residency_ms` of their data region.
    #[serde(default)]
    pub residency_share: f64,
    #[serde(default = "residency_ms")]
    pub residency_ms: f64,
    /// Bids: the kind's reference price times a factor drawn uniformly from
    /// this range.
    #[serde(default = "bid_factor")]
    pub bid_factor: [f64; 2],
    /// Chip families every job accepts (empty: any).
    #[serde(default)]
    pub families: Vec<String>,
    #[serde(default = "retries")]
    pub retries: u32,
    /// The tenant cancels a job that is not yet wholly placed this many
    /// hours after submitting it (default: it waits for ever).
    #[serde(default)]
    pub patience_h: Option<f64>,
    /// `swf`: processors per HPC node (a job of P processors is a gang of
    /// ceil(P / this) one-node tasks).
    #[serde(default)]
    pub procs_per_node: Option<u64>,
    /// `azure`: seconds per demand window.
    #[serde(default)]
    pub window_s: Option<f64>,
    /// `azure`: tokens per second one accelerator serves.
    #[serde(default)]
    pub tokens_per_gpu_s: Option<f64>,
}

fn tenant() -> String {
    "tenant".into()
}
fn data_local_share() -> f64 {
    0.7
}
fn residency_ms() -> f64 {
    10.0
}
fn bid_factor() -> [f64; 2] {
    [0.8, 2.5]
}
fn retries() -> u32 {
    2
}

/// Parses a scenario's text. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<ScenarioFile, SimError> {
    let scenario: ScenarioFile = toml::from_str(text).map_err(|e| {
        // toml's message names the key and the line; keep it on one line.
        SimError::file(file, e.to_string().trim().replace('\n', " "))
    })?;
    check(file, &scenario)?;
    Ok(scenario)
}

/// The checks that do not need the topology or the traces.
fn check(file: &str, s: &ScenarioFile) -> Result<(), SimError> {
    use limits::*;
    let err = |field: &str, message: &str| Err(SimError::field(file, field, message));
    name(file, "name", &s.name)?;
    range(file, "round_s", s.round_s, ROUND_S_MIN, ROUND_S_MAX)?;
    range(file, "lease_ttl_s", s.lease_ttl_s, 1.0, LEASE_TTL_S_MAX)?;
    range(file, "heartbeat_s", s.heartbeat_s, 1.0, s.lease_ttl_s)?;
    range(file, "horizon_h", s.horizon_h, 0.001, HORIZON_H_MAX)?;
    if s.site.len() > SITES_MAX {
        return err("site", &format!("at most {SITES_MAX} sites"));
    }
    let pools: usize = s.site.iter().map(|site| site.pool.len()).sum::<usize>()
        + s.generated_pools.as_ref().map_or(0, |g| g.count);
    if pools > POOLS_MAX {
        return err("site", &format!("at most {POOLS_MAX} pools in all"));
    }
    if pools == 0 {
        return err(
            "site",
            "no pools: add [[site]] tables with [[site.pool]], or [generated_pools]",
        );
    }
    if let Some(g) = &s.generated_pools {
        range(
            file,
            "generated_pools.capacity_scale",
            g.capacity_scale,
            1e-6,
            1e6,
        )?;
    }
    for (i, site) in s.site.iter().enumerate() {
        let f = |k: &str| format!("site[{i}].{k}");
        name(file, &f("name"), &site.name)?;
        if let Some(pue) = site.pue {
            range(file, &f("pue"), pue, 1.0, 10.0)?;
        }
        if let Some(grid) = site.grid_kg_co2_per_kwh {
            range(file, &f("grid_kg_co2_per_kwh"), grid, 0.0, 10.0)?;
        }
        for (j, pool) in site.pool.iter().enumerate() {
            let f = |k: &str| format!("site[{i}].pool[{j}].{k}");
            if pool.units == 0 {
                return err(&f("units"), "must be at least 1");
            }
            if pool.pue.or(site.pue).is_none() {
                return err(&f("pue"), "give pue on the pool or its site");
            }
            if pool
                .grid_kg_co2_per_kwh
                .or(site.grid_kg_co2_per_kwh)
                .is_none()
            {
                return err(
                    &f("grid_kg_co2_per_kwh"),
                    "give grid_kg_co2_per_kwh on the pool or its site",
                );
            }
        }
    }
    if s.failure.len() > FAILURES_MAX {
        return err("failure", &format!("at most {FAILURES_MAX}"));
    }
    for (i, failure) in s.failure.iter().enumerate() {
        let f = |k: &str| format!("failure[{i}].{k}");
        range(file, &f("from_h"), failure.from_h, 0.0, HORIZON_H_MAX)?;
        range(
            file,
            &f("to_h"),
            failure.to_h,
            failure.from_h,
            HORIZON_H_MAX,
        )?;
        let needs_site = failure.kind != FailureKind::RegionDown;
        match (needs_site, &failure.site, &failure.region) {
            (true, Some(_), None) | (false, None, Some(_)) => {}
            (true, _, _) => return err(&f("site"), "name the site (and no region)"),
            (false, _, _) => return err(&f("region"), "name the region (and no site)"),
        }
    }
    if s.workload.is_empty() {
        return err("workload", "at least one [[workload]]");
    }
    if s.workload.len() > WORKLOADS_MAX {
        return err("workload", &format!("at most {WORKLOADS_MAX}"));
    }
    for (i, w) in s.workload.iter().enumerate() {
        check_workload(file, i, w)?;
    }
    Ok(())
}

fn check_workload(file: &str, i: usize, w: &WorkloadFile) -> Result<(), SimError> {
    let f = |k: &str| format!("workload[{i}].{k}");
    let err = |k: &str, message: &str| Err(SimError::field(file, f(k), message));
    name(file, &f("name"), &w.name)?;
    name(file, &f("tenant"), &w.tenant)?;
    let synthetic = w.source == Source::Synthetic;
    match (&w.file, synthetic) {
        (Some(_), true) => return err("file", "a synthetic workload reads no file"),
        (None, false) => return err("file", "name the trace file"),
        _ => {}
    }
    if synthetic && w.jobs.is_none() {
        return err("jobs", "say how many jobs the generator makes");
    }
    if let Some(jobs) = w.jobs {
        if jobs == 0 || jobs > limits::JOBS_MAX {
            return err("jobs", &format!("must be 1 to {}", limits::JOBS_MAX));
        }
    }
    // Options of one source given to another are errors, not ignored.
    let only = |given: bool, key: &str, source: Source| {
        if given && w.source != source {
            Err(SimError::field(
                file,
                f(key),
                format!("only for source {:?}", source.as_str()),
            ))
        } else {
            Ok(())
        }
    };
    only(w.span_h.is_some(), "span_h", Source::Synthetic)?;
    only(w.mix.is_some(), "mix", Source::Synthetic)?;
    only(w.resources.is_some(), "resources", Source::Synthetic)?;
    only(w.hours_mean.is_some(), "hours_mean", Source::Synthetic)?;
    only(w.procs_per_node.is_some(), "procs_per_node", Source::Swf)?;
    only(w.window_s.is_some(), "window_s", Source::Azure)?;
    only(
        w.tokens_per_gpu_s.is_some(),
        "tokens_per_gpu_s",
        Source::Azure,
    )?;
    range(file, &f("start_h"), w.start_h, 0.0, limits::HORIZON_H_MAX)?;
    range(file, &f("time_scale"), w.time_scale, 1e-6, 1e6)?;
    if let Some(span) = w.span_h {
        range(file, &f("span_h"), span, 0.0, limits::HORIZON_H_MAX)?;
    }
    if let Some(hours) = w.hours_mean {
        range(file, &f("hours_mean"), hours, 1.0 / 60.0, 1_000.0)?;
    }
    range(file, &f("fail_share"), w.fail_share, 0.0, 1.0)?;
    range(file, &f("data_local_share"), w.data_local_share, 0.0, 1.0)?;
    range(file, &f("residency_share"), w.residency_share, 0.0, 1.0)?;
    range(file, &f("residency_ms"), w.residency_ms, 0.0, 1e4)?;
    if let Some(h) = w.patience_h {
        range(file, &f("patience_h"), h, 0.001, limits::HORIZON_H_MAX)?;
    }
    if let Some(gb) = w.data_gb {
        range(file, &f("data_gb"), gb, 0.0, 1e6)?;
    }
    if let Some(ms) = w.latency_ms_max {
        range(file, &f("latency_ms_max"), ms, 0.0, 1e4)?;
    }
    range(file, &f("bid_factor[0]"), w.bid_factor[0], 0.0, 1e3)?;
    range(
        file,
        &f("bid_factor[1]"),
        w.bid_factor[1],
        w.bid_factor[0],
        1e3,
    )?;
    if w.retries > suanwang_core::spec::limits::RETRIES_MAX {
        return err("retries", "at most 100");
    }
    if let Some(n) = w.procs_per_node {
        if n == 0 || n > 1_000_000 {
            return err("procs_per_node", "must be 1 to 1000000");
        }
    }
    if let Some(s) = w.window_s {
        range(file, &f("window_s"), s, 1.0, 86_400.0)?;
    }
    if let Some(t) = w.tokens_per_gpu_s {
        range(file, &f("tokens_per_gpu_s"), t, 1e-3, 1e9)?;
    }
    if let Some(mix) = &w.mix {
        shares(file, &f("mix"), &[mix.batch, mix.gang, mix.service])?;
    }
    if let Some(r) = &w.resources {
        shares(file, &f("resources"), &[r.cpu, r.gpu, r.hpc])?;
    }
    Ok(())
}

fn shares(file: &str, field: &str, values: &[f64]) -> Result<(), SimError> {
    for v in values {
        range(file, field, *v, 0.0, 1e6)?;
    }
    if values.iter().sum::<f64>() <= 0.0 {
        return Err(SimError::field(file, field, "shares add up to 0"));
    }
    Ok(())
}

fn name(file: &str, field: &str, text: &str) -> Result<(), SimError> {
    if text.trim().is_empty()
        || text.chars().count() > limits::NAME_CHARS_MAX
        || text.chars().any(char::is_control)
    {
        return Err(SimError::field(
            file,
            field,
            format!(
                "must be 1 to {} characters without control characters",
                limits::NAME_CHARS_MAX
            ),
        ));
    }
    Ok(())
}

pub(crate) fn range(file: &str, field: &str, v: f64, lo: f64, hi: f64) -> Result<(), SimError> {
    if !v.is_finite() || v < lo || v > hi {
        return Err(SimError::field(
            file,
            field,
            format!("must be a number in [{lo}, {hi}], not {v}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[[site]]
name = "a"
region = "guian"
pue = 1.2
grid_kg_co2_per_kwh = 0.5
[[site.pool]]
name = "cpu"
kind = "cpu"
family = "x86"
units = 8
price_yuan_per_unit_hour = 0.1
power_kw_per_unit = 0.01
[[workload]]
name = "w"
source = "synthetic"
jobs = 3
"#;

    /// One `check`: the minimal scenario with `edit` applied reads, or
    /// fails naming `expect`.
    fn check(edit: impl Fn(&str) -> String, expect: Option<&str>) {
        let text = edit(MINIMAL);
        match (parse("s.toml", &text), expect) {
            (Ok(_), None) => {}
            (Err(e), Some(want)) => {
                let got = e.to_string();
                assert!(got.contains(want), "{got:?} does not name {want:?}");
            }
            (got, want) => panic!("{got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn strict_and_fields_named() {
        check(|t| t.to_owned(), None);
        check(
            |t| t.replace("units = 8", "unit = 8"),
            Some("unknown field `unit`"),
        );
        check(
            |t| t.replace("units = 8", "units = 0"),
            Some("site[0].pool[0].units"),
        );
        check(
            |t| t.replace("pue = 1.2\n", ""),
            Some("site[0].pool[0].pue"),
        );
        check(|t| format!("{t}span_h = -1\n"), Some("workload[0].span_h"));
        check(
            |t| format!("{t}window_s = 60\n"),
            Some("workload[0].window_s: only for source \"azure\""),
        );
        check(
            |t| t.replace("jobs = 3", "jobs = 0"),
            Some("workload[0].jobs"),
        );
        check(|t| t.replace("jobs = 3", ""), Some("workload[0].jobs"));
        check(|t| format!("round_s = 0\n{t}"), Some("round_s"));
        check(
            |t| {
                format!("{t}[[failure]]\nkind = \"site_down\"\nregion = \"guian\"\nfrom_h = 1\nto_h = 2\n")
            },
            Some("failure[0].site"),
        );
        check(
            |t| {
                format!(
                    "{t}[[failure]]\nkind = \"site_down\"\nsite = \"a\"\nfrom_h = 3\nto_h = 2\n"
                )
            },
            Some("failure[0].to_h"),
        );
        check(
            |t| t.replace("kind = \"cpu\"", "kind = \"tpu\""),
            Some("unknown variant `tpu`"),
        );
    }
}
