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
    pub const NAME_BYTES_MAX: usize = 128;
    pub const COMMAND_BYTES_MAX: usize = 4_096;
    pub const ARGS_MAX: usize = 256;
    pub const ARG_BYTES_MAX: usize = 4_096;
    pub const ENV_MAX: usize = 256;
    pub const SCRIPT_BYTES_MAX: usize = 64 * 1024;
    pub const FAMILIES_MAX: usize = 32;
    pub const HOURS_MAX: f64 = 10_000.0;
    pub const DATA_GB_MAX: f64 = 1e9;
    pub const RETRIES_MAX: u32 = 100;
    pub const POOLS_PER_SITE_MAX: usize = 256;
    pub const CAPACITY_MAX: u64 = 10_000_000;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    Batch,
    Gang,
    Service,
}

impl JobKind {
    pub fn parse(text: &str) -> Option<JobKind> {
        match text {
            "batch" => Some(JobKind::Batch),
            "gang" => Some(JobKind::Gang),
            "service" => Some(JobKind::Service),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Batch => "batch",
            JobKind::Gang => "gang",
            JobKind::Service => "service",
        }
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
}

pub fn validate_job(spec: &JobSpec, topology: &Topology) -> Result<JobDef, FieldError> {
    use limits::*;
    check_name("name", &spec.name)?;
    let kind = JobKind::parse(&spec.kind)
        .ok_or_else(|| FieldError::new("kind", "must be batch, gang or service"))?;
    if spec.tasks == 0 || spec.tasks > TASKS_MAX {
        return Err(FieldError::new(
            "tasks",
            format!("must be 1 to {TASKS_MAX}"),
        ));
    }
    let resource_kind = Kind::parse(&spec.resources.kind)
        .ok_or_else(|| FieldError::new("resources.kind", "must be cpu, gpu or hpc"))?;
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
    if run.command.is_empty() || run.command.len() > COMMAND_BYTES_MAX || run.command.contains('\0')
    {
        return Err(FieldError::new(
            "run.command",
            format!("must be 1 to {COMMAND_BYTES_MAX} bytes without NUL"),
        ));
    }
    if run.args.len() > ARGS_MAX {
        return Err(FieldError::new("run.args", format!("at most {ARGS_MAX}")));
    }
    for (i, arg) in run.args.iter().enumerate() {
        if arg.len() > ARG_BYTES_MAX || arg.contains('\0') {
            return Err(FieldError::new(
                format!("run.args[{i}]"),
                format!("at most {ARG_BYTES_MAX} bytes without NUL"),
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
        if value.len() > ARG_BYTES_MAX || value.contains('\0') {
            return Err(FieldError::new(
                format!("run.env.{key}"),
                format!("at most {ARG_BYTES_MAX} bytes without NUL"),
            ));
        }
    }
    if let Some(script) = &run.slurm_script {
        if script.len() > SCRIPT_BYTES_MAX {
            return Err(FieldError::new(
                "run.slurm_script",
                format!("at most {SCRIPT_BYTES_MAX} bytes"),
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
            let mut regions = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                regions.push(topology.require_region(&format!("allowed_regions[{i}]"), id)?);
            }
            regions.sort_unstable();
            regions.dedup();
            Some(regions)
        }
    };
    if let Some(deadline) = &spec.deadline {
        if deadline.len() > 64 {
            return Err(FieldError::new("deadline", "must be an RFC 3339 time"));
        }
    }
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
    })
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
        let kind = Kind::parse(&pool.kind)
            .ok_or_else(|| FieldError::new(field("kind"), "must be cpu, gpu or hpc"))?;
        check_id(&field("family"), &pool.family)?;
        if pool.device_model.len() > 128 {
            return Err(FieldError::new(field("device_model"), "at most 128 bytes"));
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
        || name.len() > limits::NAME_BYTES_MAX
        || name.chars().any(char::is_control)
    {
        return Err(FieldError::new(
            field,
            format!(
                "must be 1 to {} bytes without control characters",
                limits::NAME_BYTES_MAX
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
            kind: "batch".into(),
            tasks: 4,
            resources: ResourcesSpec {
                kind: "cpu".into(),
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
        check(|s| s.kind = "cron".into(), Some("kind"));
        check(|s| s.resources.kind = "tpu".into(), Some("resources.kind"));
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
    }
}
