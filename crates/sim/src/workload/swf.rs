//! The Standard Workload Format of the Parallel Workloads Archive
//! (Feitelson; <https://www.cs.huji.ac.il/labs/parallel/workload/>): one job
//! per line, 18 whitespace-separated numbers, `;` comments.
//!
//! A job of P processors (allocated, else requested) is an HPC gang of
//! `ceil(P / procs_per_node)` one-node tasks (one task: a batch job); it
//! arrives at its submit time (field 2) and runs its run time (field 4).
//! Status 0 (failed) fails every attempt. The format's "unknown" (-1) run
//! time or processor count describes no runnable job: such lines are
//! skipped and counted; a line that is not 18 numbers is an error.

use suanwang_core::spec::JobKind;
use suanwang_place::Kind;

use super::{Loaded, Qos, Raw};
use crate::error::SimError;

pub fn parse(file: &str, text: &str, procs_per_node: u64) -> Result<Loaded, SimError> {
    let mut loaded = Loaded::default();
    for (i, text) in text.lines().enumerate() {
        let line = i + 1;
        let text = text.trim();
        if text.is_empty() || text.starts_with(';') {
            continue;
        }
        super::check_count(file, line, loaded.raws.len())?;
        let numbers: Vec<&str> = text.split_whitespace().collect();
        if numbers.len() != 18 {
            return Err(SimError::line(
                file,
                line,
                format!("{} fields, SWF has 18", numbers.len()),
            ));
        }
        let mut values = [0f64; 18];
        for (k, cell) in numbers.iter().enumerate() {
            values[k] = cell
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    SimError::line(
                        file,
                        line,
                        format!("field {}: {cell:?} is not a number", k + 1),
                    )
                })?;
        }
        let (submit, run, allocated, requested, status) =
            (values[1], values[3], values[4], values[7], values[10]);
        let procs = if allocated > 0.0 {
            allocated
        } else {
            requested
        };
        if run <= 0.0 {
            loaded.skip("run time unknown or 0");
            continue;
        }
        if procs <= 0.0 {
            loaded.skip("processors unknown");
            continue;
        }
        if submit < 0.0 {
            return Err(SimError::line(
                file,
                line,
                "field 2 (submit time): negative",
            ));
        }
        let nodes = (procs as u64).div_ceil(procs_per_node).max(1);
        if nodes > 100_000 {
            return Err(SimError::line(file, line, "more than 100,000 nodes"));
        }
        let kind = if nodes > 1 {
            JobKind::Gang
        } else {
            JobKind::Batch
        };
        let mut raw = Raw::new(line, submit, kind, Kind::Hpc);
        raw.tasks = nodes;
        raw.units = 1;
        raw.duration_s = run;
        raw.qos = Qos::Normal;
        raw.fail_share = if status == 0.0 { 1.0 } else { 0.0 };
        loaded.raws.push(raw);
    }
    Ok(loaded)
}
