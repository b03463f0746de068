//! Workloads: where the simulated jobs come from.
//!
//! Each loader turns its source into [`Raw`] jobs — arrival time, shape,
//! run time, and whatever the source knows about constraints — with the
//! line number each came from. [`geo::assign`] then gives every job what
//! traces do not carry (origin, data region and size, latency circle,
//! residency, bid) by documented, seeded rules, and the job is validated by
//! the server's own `core::spec::validate_job`, so a simulated job is a job
//! the real server would accept.
//!
//! | source | module | what |
//! |---|---|---|
//! | `synthetic` | [`synthetic`] | seeded batch, gang and service jobs |
//! | `csv` | [`own`] | our own documented CSV |
//! | `alibaba` | [`alibaba`] | Alibaba GPU trace 2023 (`openb_pod_list_*.csv`) |
//! | `swf` | [`swf`] | Standard Workload Format (Parallel Workloads Archive) |
//! | `azure` | [`azure`] | Azure LLM inference requests → service demand |
//!
//! Malformed lines are rejected, never skipped, with file and line number.

use std::path::Path;
use std::sync::Arc;

use suanwang_core::spec::{JobDef, JobKind};
use suanwang_core::topology::Topology;
use suanwang_place::Kind;

use crate::error::SimError;
use crate::scenario::{limits, Source, WorkloadFile};

pub mod alibaba;
pub mod azure;
pub mod geo;
pub mod own;
pub mod swf;
pub mod synthetic;

/// How sensitive a job is to latency: decides its default latency circle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    /// Interactive (services, the Alibaba trace's `LS`).
    Latency,
    Normal,
    /// Anything goes (the Alibaba trace's `BE`).
    BestEffort,
}

/// A job as its source describes it. `None` fields are filled by
/// [`geo::assign`]'s rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Raw {
    /// The line of the source it came from (0 for generated jobs).
    pub line: usize,
    /// Seconds after the source's start.
    pub at_s: f64,
    pub kind: JobKind,
    pub resource: Kind,
    pub tasks: u64,
    pub units: u64,
    /// How long each task really runs.
    pub duration_s: f64,
    /// The chance that an attempt fails at its end (exit 1).
    pub fail_share: f64,
    pub qos: Qos,
    pub bid_yuan_per_unit_hour: Option<f64>,
    pub origin: Option<String>,
    pub data_region: Option<String>,
    pub data_gb: Option<f64>,
    /// `Some(None)`: the source says "no circle".
    pub latency_ms_max: Option<Option<f64>>,
    pub allowed_regions: Option<Vec<String>>,
    pub families: Option<Vec<String>>,
    pub retries: Option<u32>,
    /// Hours after arrival by which every task must have finished.
    pub deadline_h: Option<f64>,
}

impl Raw {
    pub fn new(line: usize, at_s: f64, kind: JobKind, resource: Kind) -> Raw {
        Raw {
            line,
            at_s,
            kind,
            resource,
            tasks: 1,
            units: 1,
            duration_s: 60.0,
            fail_share: 0.0,
            qos: Qos::Normal,
            bid_yuan_per_unit_hour: None,
            origin: None,
            data_region: None,
            data_gb: None,
            latency_ms_max: None,
            allowed_regions: None,
            families: None,
            retries: None,
            deadline_h: None,
        }
    }
}

/// A job ready to arrive: validated by the server's rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrival {
    pub at_ms: i64,
    /// Index of its workload in the scenario.
    pub workload: usize,
    pub tenant: Arc<str>,
    pub def: Arc<JobDef>,
    /// How long each task really runs (the estimate is `def.hours`).
    pub duration_ms: i64,
    pub fail_share: f64,
    /// When its tenant gives up on it if it is not wholly placed by then.
    pub give_up_ms: Option<i64>,
    /// Where it came from, for errors and reports: `file:line`.
    pub line: usize,
}

/// What a loader read, and what it skipped (with the reason).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    pub raws: Vec<Raw>,
    /// Lines the format allows but that describe no runnable job (an SWF
    /// job with no run time), by reason.
    pub skipped: Vec<(String, u64)>,
}

impl Loaded {
    pub fn skip(&mut self, reason: &str) {
        match self.skipped.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += 1,
            None => self.skipped.push((reason.to_owned(), 1)),
        }
    }
}

/// A workload loaded and turned into arrivals.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub name: String,
    pub source: Source,
    pub file: Option<String>,
    pub arrivals: Vec<Arrival>,
    pub skipped: Vec<(String, u64)>,
}

/// The simulated clock's origin: 2026-12-01T00:00:00Z. Deadlines are
/// absolute times, so the clock needs an epoch; every report time is
/// relative to it.
pub const START_MS: i64 = 1_796_083_200_000;

/// Loads workload `index` of the scenario at `dir`.
pub fn load(
    scenario_file: &str,
    dir: &Path,
    index: usize,
    w: &WorkloadFile,
    topology: &Topology,
    seed: u64,
) -> Result<Workload, SimError> {
    let (file, loaded) = match w.source {
        Source::Synthetic => (None, synthetic::generate(w, seed_for(seed, index, 1))),
        source => {
            let rel = w.file.as_deref().expect("checked: a trace names its file");
            let path = dir.join(rel);
            let name = path.display().to_string();
            let text = crate::error::read_text(&path, limits::TRACE_BYTES_MAX)?;
            let loaded = match source {
                Source::Csv => own::parse(&name, &text)?,
                Source::Alibaba => alibaba::parse(&name, &text)?,
                Source::Swf => swf::parse(&name, &text, w.procs_per_node.unwrap_or(8))?,
                Source::Azure => azure::parse(
                    &name,
                    &text,
                    w.window_s.unwrap_or(300.0),
                    w.tokens_per_gpu_s.unwrap_or(2_000.0),
                )?,
                Source::Synthetic => unreachable!("handled above"),
            };
            (Some(name), loaded)
        }
    };
    let field = |k: &str| format!("workload[{index}].{k}");
    let rules = geo::Rules::new(w, topology)
        .map_err(|(k, m)| SimError::field(scenario_file, field(k), m))?;
    let mut rng = geo::rng(seed_for(seed, index, 2));
    let mut raws = loaded.raws;
    if let Some(limit) = w.jobs.filter(|_| w.source != Source::Synthetic) {
        raws.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    let tenant: Arc<str> = Arc::from(w.tenant.as_str());
    let mut arrivals = Vec::with_capacity(raws.len());
    for raw in raws {
        let where_ = || match &file {
            Some(name) => (name.clone(), raw.line),
            None => (scenario_file.to_owned(), 0),
        };
        let at_s = w.start_h * 3_600.0 + raw.at_s * w.time_scale;
        let at_ms = START_MS + (at_s * 1_000.0).round() as i64;
        let (spec, duration_ms) = rules.assign(&raw, at_ms, &mut rng, &w.name);
        let def = suanwang_core::spec::validate_job(&spec, topology).map_err(|e| {
            let (name, line) = where_();
            if line == 0 {
                SimError::field(&name, field("(generated job)"), e)
            } else {
                SimError::line(&name, line, format!("the job is not valid: {e}"))
            }
        })?;
        arrivals.push(Arrival {
            at_ms,
            workload: index,
            tenant: tenant.clone(),
            def: Arc::new(def),
            duration_ms,
            fail_share: raw.fail_share,
            give_up_ms: w
                .patience_h
                .map(|h| at_ms + (h * 3_600_000.0).round() as i64),
            line: raw.line,
        });
    }
    Ok(Workload {
        name: w.name.clone(),
        source: w.source,
        file,
        arrivals,
        skipped: loaded.skipped,
    })
}

/// A seed of its own for each workload and purpose, so adding a workload
/// or a rule does not shift the draws of the others.
pub fn seed_for(seed: u64, index: usize, purpose: u64) -> u64 {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ purpose.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fields of one CSV line. Our traces have no quoted fields; a quote
/// is an error rather than a half-understood line.
pub fn fields<'a>(file: &str, line: usize, text: &'a str) -> Result<Vec<&'a str>, SimError> {
    if text.contains('"') {
        return Err(SimError::line(
            file,
            line,
            "quoted fields are not supported",
        ));
    }
    Ok(text.split(',').map(str::trim).collect())
}

/// Column positions by name from a header line; `required` must all be
/// there, `optional` may be; anything else is an error.
pub fn columns(
    file: &str,
    header: &str,
    required: &[&str],
    optional: &[&str],
    others_allowed: bool,
) -> Result<Vec<Option<usize>>, SimError> {
    let names = fields(file, 1, header)?;
    for name in &names {
        if !others_allowed && !required.contains(name) && !optional.contains(name) {
            return Err(SimError::line(
                file,
                1,
                format!(
                    "unknown column {name:?}; the columns are {}",
                    required
                        .iter()
                        .chain(optional)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
    }
    let mut positions = Vec::with_capacity(required.len() + optional.len());
    for name in required.iter().chain(optional) {
        let at = names.iter().position(|n| n == name);
        if at.is_none() && required.contains(name) {
            return Err(SimError::line(file, 1, format!("missing column {name:?}")));
        }
        positions.push(at);
    }
    Ok(positions)
}

/// A number from a CSV cell, with the column named in the error.
pub fn number(file: &str, line: usize, column: &str, cell: &str) -> Result<f64, SimError> {
    let value: f64 = cell
        .parse()
        .map_err(|_| SimError::line(file, line, format!("{column}: {cell:?} is not a number")))?;
    if !value.is_finite() {
        return Err(SimError::line(
            file,
            line,
            format!("{column}: {cell:?} is not finite"),
        ));
    }
    Ok(value)
}

/// A whole number in `lo..=hi`.
pub fn whole(
    file: &str,
    line: usize,
    column: &str,
    cell: &str,
    lo: u64,
    hi: u64,
) -> Result<u64, SimError> {
    let value: u64 = cell.parse().map_err(|_| {
        SimError::line(
            file,
            line,
            format!("{column}: {cell:?} is not a whole number"),
        )
    })?;
    if value < lo || value > hi {
        return Err(SimError::line(
            file,
            line,
            format!("{column}: {value} is outside {lo}..={hi}"),
        ));
    }
    Ok(value)
}

/// Checks the running total of jobs against the scenario's limit.
pub fn check_count(file: &str, line: usize, count: usize) -> Result<(), SimError> {
    if count as u64 >= limits::JOBS_MAX {
        return Err(SimError::line(
            file,
            line,
            format!("more than {} jobs", limits::JOBS_MAX),
        ));
    }
    Ok(())
}
