//! Job specs: validation of what a tenant submits, and pool specs from
//! providers. Every error names the field by its JSON path.

use suanwang_api::{JobSpec, PoolSpec};
use suanwang_place::Kind;

use crate::money::micro_yuan;
use crate::topology::{check_id, Topology};
use crate::FieldError;

/// Limits on a job spec: a job is a request, not a payload.
pub mod limits {
    pub const TASKS_MAX: u64 = 100_000;
    pub const UNITS_MAX: u64 = 100_000;
    // Lengths are in characters (Unicode scalar values), as JSON Schema's
    // `maxLength` counts them.
    pub const NAME_CHARS_MAX: usize = 128;
    pub const COMMAND_CHARS_MAX: usize = 4_096;
    pub const ARGS_MAX: usize = 256;
    pub const ARG_CHARS_MAX: usize = 4_096;
    pub const ENV_MAX: usize = 256;
    pub const SCRIPT_CHARS_MAX: usize = 64 * 1024;
    pub const FAMILIES_MAX: usize = 32;
    pub const HOURS_MAX: f64 = 10_000.0;
    pub const DATA_GB_MAX: f64 = 1e9;
    pub const RETRIES_MAX: u32 = 100;
    pub const POOLS_PER_SITE_MAX: usize = 256;
    pub const CAPACITY_MAX: u64 = 10_000_000;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobKind {
    Batch,
    Gang,
    Service,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Batch, JobKind::Gang, JobKind::Service];

    pub fn parse(text: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Batch => "batch",
            JobKind::Gang => "gang",
            JobKind::Service => "service",
        }
    }
}

impl From<suanwang_api::JobKind> for JobKind {
    fn from(kind: suanwang_api::JobKind) -> JobKind {
        match kind {
            suanwang_api::JobKind::Batch => JobKind::Batch,
            suanwang_api::JobKind::Gang => JobKind::Gang,
            suanwang_api::JobKind::Service => JobKind::Service,
        }
    }
}

/// The engine's kind of a wire kind.
pub fn resource_kind(kind: suanwang_api::ResourceKind) -> Kind {
    match kind {
        suanwang_api::ResourceKind::Cpu => Kind::Cpu,
        suanwang_api::ResourceKind::Gpu => Kind::Gpu,
        suanwang_api::ResourceKind::Hpc => Kind::Hpc,
    }
}

/// A validated job: what the scheduler needs, with regions resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDef {
    pub kind: JobKind,
    pub tasks: u64,
    pub resource_kind: Kind,
    pub units: u64,
    pub families: Vec<String>,
    pub hours: f64,
    pub bid_micro_yuan_per_unit_hour: i64,
    pub origin: usize,
    pub latency_ms_max: Option<f64>,
    pub data_region: usize,
    pub data_gb: f64,
    /// Sorted, unique region indices.
    pub allowed_regions: Option<Vec<usize>>,
    pub retries: u32,
    /// When every task must have finished, in milliseconds since the epoch
    /// (`deadline::verdict` decides what may still start).
    pub deadline_ms: Option<i64>,
}

impl JobDef {
    /// A task's estimated run time in milliseconds.
    pub fn hours_ms(&self) -> i64 {
        crate::deadline::hours_ms(self.hours)
    }

    /// Where the job stands against its deadline at `now_ms`.
    pub fn deadline_at(&self, now_ms: i64) -> crate::deadline::Verdict {
        crate::deadline::verdict(self.deadline_ms, self.hours_ms(), now_ms)
    }
}

pub fn validate_job(spec: &JobSpec, topology: &Topology) -> Result<JobDef, FieldError> {
    use limits::*;
    check_name("name", &spec.name)?;
    let kind = JobKind::from(spec.kind);
    if spec.tasks == 0 || spec.tasks > TASKS_MAX {
        return Err(FieldError::new(
            "tasks",
            format!("must be 1 to {TASKS_MAX}"),
        ));
    }
    let resource_kind = resource_kind(spec.resources.kind);
    if spec.resources.units == 0 || spec.resources.units > UNITS_MAX {
        return Err(FieldError::new(
            "resources.units",
            format!("must be 1 to {UNITS_MAX}"),
        ));
    }
    if spec.resources.families.len() > FAMILIES_MAX {
        return Err(FieldError::new(
            "resources.families",
            format!("at most {FAMILIES_MAX}"),
        ));
    }
    let mut families = Vec::with_capacity(spec.resources.families.len());
    for (i, family) in spec.resources.families.iter().enumerate() {
        check_id(&format!("resources.families[{i}]"), family)?;
        families.push(family.clone());
    }
    families.sort();
    families.dedup();
    check_finite("resources.memory_gib", spec.resources.memory_gib, 1e6)?;
    let run = &spec.run;
    if run.command.is_empty()
        || run.command.chars().count() > COMMAND_CHARS_MAX
        || run.command.contains('\0')
    {
        return Err(FieldError::new(
            "run.command",
            format!("must be 1 to {COMMAND_CHARS_MAX} characters without NUL"),
        ));
    }
    if run.args.len() > ARGS_MAX {
        return Err(FieldError::new("run.args", format!("at most {ARGS_MAX}")));
    }
    for (i, arg) in run.args.iter().enumerate() {
        if arg.chars().count() > ARG_CHARS_MAX || arg.contains('\0') {
            return Err(FieldError::new(
                format!("run.args[{i}]"),
                format!("at most {ARG_CHARS_MAX} characters without NUL"),
            ));
        }
    }
    if run.env.len() > ENV_MAX {
        return Err(FieldError::new("run.env", format!("at most {ENV_MAX}")));
    }
    for (key, value) in &run.env {
        let valid_key = !key.is_empty()
            && key.len() <= 256
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(FieldError::new(
                format!("run.env.{key}"),
                "names are letters, digits and '_', not starting with a digit",
            ));
        }
        if key.starts_with("SUANWANG_") {
            return Err(FieldError::new(
                format!("run.env.{key}"),
                "SUANWANG_ is reserved",
            ));
        }
        if value.chars().count() > ARG_CHARS_MAX || value.contains('\0') {
            return Err(FieldError::new(
                format!("run.env.{key}"),
                format!("at most {ARG_CHARS_MAX} characters without NUL"),
            ));
        }
    }
    if let Some(script) = &run.slurm_script {
        if script.chars().count() > SCRIPT_CHARS_MAX {
            return Err(FieldError::new(
                "run.slurm_script",
                format!("at most {SCRIPT_CHARS_MAX} characters"),
            ));
        }
    }
    check_finite("hours", spec.hours, HOURS_MAX)?;
    if spec.hours <= 0.0 {
        return Err(FieldError::new("hours", "must be > 0"));
    }
    let bid = micro_yuan("bid_yuan_per_unit_hour", spec.bid_yuan_per_unit_hour)?;
    let origin = topology.require_region("origin", &spec.origin)?;
    if let Some(latency) = spec.latency_ms_max {
        check_finite("latency_ms_max", latency, 1e6)?;
    }
    let data_region = match &spec.data_region {
        Some(id) => topology.require_region("data_region", id)?,
        None => origin,
    };
    check_finite("data_gb", spec.data_gb, DATA_GB_MAX)?;
    let allowed_regions = match &spec.allowed_regions {
        None => None,
        Some(ids) => {
            if ids.is_empty() {
                return Err(FieldError::new(
                    "allowed_regions",
                    "must name at least one region (leave it out for anywhere)",
                ));
            }
            if ids.len() > crate::topology::REGIONS_MAX {
                return Err(FieldError::new(
                    "allowed_regions",
                    format!("at most {} regions", crate::topology::REGIONS_MAX),
                ));
            }
            let mut regions = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                regions.push(topology.require_region(&format!("allowed_regions[{i}]"), id)?);
            }
            regions.sort_unstable();
            regions.dedup();
            Some(regions)
        }
    };
    let deadline_ms = parse_deadline(spec)?;
    if spec.retries > RETRIES_MAX {
        return Err(FieldError::new("retries", format!("at most {RETRIES_MAX}")));
    }
    Ok(JobDef {
        kind,
        tasks: spec.tasks,
        resource_kind,
        units: spec.resources.units,
        families,
        hours: spec.hours,
        bid_micro_yuan_per_unit_hour: bid,
        origin,
        latency_ms_max: spec.latency_ms_max,
        data_region,
        data_gb: spec.data_gb,
        allowed_regions,
        retries: spec.retries,
        deadline_ms,
    })
}

fn parse_deadline(spec: &JobSpec) -> Result<Option<i64>, FieldError> {
    let Some(text) = &spec.deadline else {
        return Ok(None);
    };
    Some(text)
        .filter(|text| text.len() <= 64)
        .and_then(|text| crate::deadline::parse_ms(text))
        .map(Some)
        .ok_or_else(|| {
            FieldError::new(
                "deadline",
                "must be an RFC 3339 time with an offset, e.g. 2026-12-01T08:00:00+08:00",
            )
        })
}

/// A stored spec's deadline and a task's run time in milliseconds, without
/// the rest of [`validate_job`] (which a stored spec may fail after the
/// topology changed): what "why is my job waiting?" needs. `None` without
/// a deadline.
pub fn deadline_terms(spec: &JobSpec) -> Result<Option<(i64, i64)>, FieldError> {
    check_finite("hours", spec.hours, limits::HOURS_MAX)?;
    Ok(parse_deadline(spec)?
        .map(|deadline_ms| (deadline_ms, crate::deadline::hours_ms(spec.hours))))
}

/// What a submission adds to [`validate_job`]: its deadline must still be
/// reachable at `now_ms` (a task started now finishes by it). A stored job
/// whose deadline passed is still valid; its waiting tasks fail instead.
pub fn check_submission(def: &JobDef, now_ms: i64) -> Result<(), FieldError> {
    match def.deadline_at(now_ms) {
        crate::deadline::Verdict::Missed {
            deadline_ms,
            left_ms,
        } => Err(FieldError::new(
            "deadline",
            format!(
                "cannot be met: a task needs {} and {} is {}",
                crate::deadline::duration(def.hours_ms()),
                crate::deadline::format_ms(deadline_ms),
                if left_ms < 0 {
                    "already past".to_owned()
                } else {
                    format!("only {} away", crate::deadline::duration(left_ms))
                }
            ),
        )),
        crate::deadline::Verdict::None | crate::deadline::Verdict::Open { .. } => Ok(()),
    }
}

/// A validated pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolDef {
    pub name: String,
    pub kind: Kind,
    pub family: String,
    pub capacity: u64,
    pub price_micro_yuan_per_unit_hour: i64,
}

pub fn validate_pools(pools: &[PoolSpec]) -> Result<Vec<PoolDef>, FieldError> {
    use limits::*;
    if pools.len() > POOLS_PER_SITE_MAX {
        return Err(FieldError::new(
            "pools",
            format!("at most {POOLS_PER_SITE_MAX}"),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut defs = Vec::with_capacity(pools.len());
    for (i, pool) in pools.iter().enumerate() {
        let field = |name: &str| format!("pools[{i}].{name}");
        check_id(&field("name"), &pool.name)?;
        if !names.insert(pool.name.as_str()) {
            return Err(FieldError::new(field("name"), "duplicate pool name"));
        }
        // `kind` is a `ResourceKind`: a bad one is the body parser's error.
        let kind = resource_kind(pool.kind);
        check_id(&field("family"), &pool.family)?;
        if pool.device_model.chars().count() > 128 {
            return Err(FieldError::new(
                field("device_model"),
                "at most 128 characters",
            ));
        }
        if pool.capacity > CAPACITY_MAX {
            return Err(FieldError::new(
                field("capacity"),
                format!("at most {CAPACITY_MAX}"),
            ));
        }
        let price = micro_yuan(
            &field("price_yuan_per_unit_hour"),
            pool.price_yuan_per_unit_hour,
        )?;
        check_finite(&field("power_kw_per_unit"), pool.power_kw_per_unit, 1e3)?;
        check_finite(&field("pue"), pool.pue, 10.0)?;
        if pool.pue < 1.0 {
            return Err(FieldError::new(field("pue"), "must be >= 1"));
        }
        check_finite(
            &field("grid_kg_co2_per_kwh"),
            pool.grid_kg_co2_per_kwh,
            10.0,
        )?;
        defs.push(PoolDef {
            name: pool.name.clone(),
            kind,
            family: pool.family.clone(),
            capacity: pool.capacity,
            price_micro_yuan_per_unit_hour: price,
        });
    }
    Ok(defs)
}

pub fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty()
        || name.chars().count() > limits::NAME_CHARS_MAX
        || name.chars().any(char::is_control)
    {
        return Err(FieldError::new(
            field,
            format!(
                "must be 1 to {} characters without control characters",
                limits::NAME_CHARS_MAX
            ),
        ));
    }
    Ok(())
}

fn check_finite(field: &str, value: f64, max: f64) -> Result<(), FieldError> {
    if !value.is_finite() || value < 0.0 || value > max {
        return Err(FieldError::new(
            field,
            format!("must be a number in [0, {max}]"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use suanwang_api::{ResourcesSpec, RunSpec};

    use super::*;

    fn hello() -> JobSpec {
        JobSpec {
            name: "hello".into(),
            kind: suanwang_api::JobKind::Batch,
            tasks: 4,
            resources: ResourcesSpec {
                kind: suanwang_api::ResourceKind::Cpu,
                units: 1,
                families: vec![],
                memory_gib: 0.0,
            },
            run: RunSpec {
                command: "true".into(),
                args: vec![],
                env: BTreeMap::new(),
                slurm_script: None,
            },
            hours: 0.01,
            bid_yuan_per_unit_hour: 1.0,
            origin: "shanghai".into(),
            latency_ms_max: None,
            data_region: None,
            data_gb: 0.0,
            allowed_regions: None,
            deadline: None,
            retries: 2,
        }
    }

    /// One `check`: mutate the hello job, expect the named field (or Ok).
    fn check(mutate: impl FnOnce(&mut JobSpec), expect_field: Option<&str>) {
        let topology = Topology::national();
        let mut spec = hello();
        mutate(&mut spec);
        let result = validate_job(&spec, &topology);
        match expect_field {
            None => assert!(result.is_ok(), "{result:?}"),
            Some(field) => assert_eq!(result.unwrap_err().field, field),
        }
    }

    #[test]
    fn fields_are_named() {
        check(|_| {}, None);
        check(|s| s.tasks = 0, Some("tasks"));
        check(
            |s| s.allowed_regions = Some(vec!["guian".into(); 4_097]),
            Some("allowed_regions"),
        );
        check(|s| s.name = "名".repeat(128), None);
        check(|s| s.name = "名".repeat(129), Some("name"));
        check(|s| s.run.command = "命".repeat(4_096), None);
        check(|s| s.resources.units = 0, Some("resources.units"));
        check(|s| s.origin = "atlantis".into(), Some("origin"));
        check(
            |s| s.allowed_regions = Some(vec!["guian".into(), "x".into()]),
            Some("allowed_regions[1]"),
        );
        check(
            |s| s.allowed_regions = Some(vec![]),
            Some("allowed_regions"),
        );
        check(
            |s| s.bid_yuan_per_unit_hour = f64::NAN,
            Some("bid_yuan_per_unit_hour"),
        );
        check(|s| s.hours = 0.0, Some("hours"));
        check(|s| s.run.command = String::new(), Some("run.command"));
        check(|s| s.run.args = vec!["a\0b".into()], Some("run.args[0]"));
        check(
            |s| {
                s.run.env.insert("SUANWANG_JOB".into(), "x".into());
            },
            Some("run.env.SUANWANG_JOB"),
        );
        check(|s| s.name = "  ".into(), Some("name"));
        check(
            |s| s.data_region = Some("nowhere".into()),
            Some("data_region"),
        );
        check(|s| s.deadline = Some("2026-12-01T00:00:00Z".into()), None);
        check(
            |s| s.deadline = Some("2026-12-01T00:00:00".into()),
            Some("deadline"),
        );
        check(|s| s.deadline = Some("next week".into()), Some("deadline"));
        check(
            |s| s.deadline = Some(format!("2026-12-01T00:00:00.{}Z", "0".repeat(60))),
            Some("deadline"),
        );
    }

    #[test]
    fn a_deadline_is_parsed_and_checked_at_submission() {
        let topology = Topology::national();
        let t0 = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        let mut spec = hello();
        spec.hours = 1.0;
        spec.deadline = Some("2026-12-01T08:00:00+08:00".into());
        let def = validate_job(&spec, &topology).unwrap();
        assert_eq!(def.deadline_ms, Some(t0));
        // (now, accepted?): a task started now must finish by the deadline.
        let table = [
            (t0 - 2 * 3_600_000, true),
            (t0 - 3_600_000, true),
            (t0 - 3_600_000 + 1, false),
            (t0 - 60_000, false),
            (t0 + 1, false),
        ];
        for (now, accepted) in table {
            let result = check_submission(&def, now);
            assert_eq!(result.is_ok(), accepted, "now {now}: {result:?}");
            if let Err(error) = result {
                assert_eq!(error.field, "deadline");
            }
        }
        spec.deadline = None;
        let def = validate_job(&spec, &topology).unwrap();
        assert_eq!(def.deadline_ms, None);
        assert!(check_submission(&def, i64::MAX).is_ok());
    }
}
