//! The Alibaba GPU cluster trace 2023 ("OpenB", `openb_pod_list_*.csv`;
//! alibaba/clusterdata cluster-trace-gpu-v2023, CC BY 4.0; Weng et al.,
//! "Beware of Fragmentation", USENIX ATC 2023).
//!
//! One pod is one single-task batch job:
//! - `num_gpu > 0`: a GPU job of `num_gpu` accelerators. A pod asking for a
//!   share of one GPU (`gpu_milli < 1000`) holds a whole one: suanwang's
//!   pools sell whole units (GPU sharing is not modelled).
//! - `num_gpu = 0`: a CPU job of `ceil(cpu_milli / 1000)` cores.
//! - run time `deletion_time - creation_time` seconds (at least 1);
//!   arrival `creation_time`.
//! - `gpu_spec` (`V100M16|V100M32`) becomes the accepted chip families,
//!   lower-cased; empty means any.
//! - `qos` `LS` is latency-sensitive, `BE` best effort; `pod_phase`
//!   `Failed` pods fail every attempt (so the job ends failed after its
//!   retries, as in the trace).

use suanwang_core::spec::JobKind;
use suanwang_place::Kind;

use super::{columns, fields, whole, Loaded, Qos, Raw};
use crate::error::SimError;

const REQUIRED: [&str; 7] = [
    "cpu_milli",
    "num_gpu",
    "gpu_milli",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
];
const OPTIONAL: [&str; 1] = ["gpu_spec"];

/// Trace seconds at most (ten years): a larger time is a broken line.
const TIME_MAX: u64 = 315_360_000;

pub fn parse(file: &str, text: &str) -> Result<Loaded, SimError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (_, header) = lines
        .next()
        .ok_or_else(|| SimError::line(file, 1, "empty file: expected a header"))?;
    // The trace has more columns (name, memory_mib, scheduled_time).
    let cols = columns(file, header, &REQUIRED, &OPTIONAL, true)?;
    let width = header.split(',').count();
    let mut loaded = Loaded::default();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        super::check_count(file, line, loaded.raws.len())?;
        let cells = fields(file, line, text)?;
        if cells.len() != width {
            return Err(SimError::line(
                file,
                line,
                format!("{} fields, the header has {width}", cells.len()),
            ));
        }
        let cell = |k: usize| cols[k].map_or("", |at| cells[at]);
        let cpu_milli = whole(file, line, "cpu_milli", cell(0), 0, 10_000_000)?;
        let num_gpu = whole(file, line, "num_gpu", cell(1), 0, 1_000)?;
        let gpu_milli = whole(file, line, "gpu_milli", cell(2), 0, 1_000)?;
        let created = whole(file, line, "creation_time", cell(5), 0, TIME_MAX)?;
        let deleted = whole(file, line, "deletion_time", cell(6), 0, TIME_MAX)?;
        if deleted < created {
            return Err(SimError::line(
                file,
                line,
                format!("deletion_time {deleted} is before creation_time {created}"),
            ));
        }
        let (resource, units) = if num_gpu > 0 {
            (Kind::Gpu, num_gpu)
        } else {
            (Kind::Cpu, cpu_milli.div_ceil(1_000).max(1))
        };
        if num_gpu > 0 && gpu_milli == 0 {
            return Err(SimError::line(file, line, "gpu_milli: 0 for a GPU pod"));
        }
        let mut raw = Raw::new(line, created as f64, JobKind::Batch, resource);
        raw.units = units;
        raw.duration_s = (deleted - created).max(1) as f64;
        raw.qos = match cell(3) {
            "LS" => Qos::Latency,
            "BE" => Qos::BestEffort,
            "Burstable" | "Guaranteed" => Qos::Normal,
            other => {
                return Err(SimError::line(
                    file,
                    line,
                    format!("qos: {other:?} is not LS, BE, Burstable or Guaranteed"),
                ))
            }
        };
        raw.fail_share = match cell(4) {
            "Failed" => 1.0,
            "Succeeded" | "Running" | "Pending" => 0.0,
            other => {
                return Err(SimError::line(
                    file,
                    line,
                    format!("pod_phase: {other:?} is not Succeeded, Running, Pending or Failed"),
                ))
            }
        };
        let spec = cell(7);
        if !spec.is_empty() {
            raw.families = Some(spec.split('|').map(str::to_lowercase).collect());
        }
        loaded.raws.push(raw);
    }
    Ok(loaded)
}
