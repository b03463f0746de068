//! Our own CSV: one job per line, a header naming the columns (any order).
//!
//! | column | required | what |
//! |---|---|---|
//! | `submit_s` | yes | seconds after the workload's start |
//! | `kind` | yes | `batch`, `gang` or `service` |
//! | `resource` | yes | `cpu`, `gpu` or `hpc` |
//! | `tasks` | yes | 1–100,000 |
//! | `units` | yes | units per task, 1–100,000 |
//! | `duration_s` | yes | how long each task runs, > 0 |
//! | `bid_yuan_per_unit_hour` | no | else the bid rule |
//! | `origin`, `data_region` | no | region ids; else the rules |
//! | `data_gb` | no | GB of input per task |
//! | `latency_ms_max` | no | `none` for no circle; empty for the rule |
//! | `allowed_regions`, `families` | no | `|`-separated lists |
//! | `retries` | no | 0–100 |
//! | `fail_share` | no | 0–1, the chance an attempt fails |
//! | `deadline_h` | no | hours after submission by which all must finish |
//!
//! An empty optional cell means "use the rule". Lines starting with `#` and
//! blank lines are skipped. Anything else that does not read is an error
//! naming the file, line and column.

use suanwang_core::spec::JobKind;
use suanwang_place::Kind;

use super::{columns, fields, number, whole, Loaded, Qos, Raw};
use crate::error::SimError;

const REQUIRED: [&str; 6] = [
    "submit_s",
    "kind",
    "resource",
    "tasks",
    "units",
    "duration_s",
];
const OPTIONAL: [&str; 10] = [
    "bid_yuan_per_unit_hour",
    "origin",
    "data_region",
    "data_gb",
    "latency_ms_max",
    "allowed_regions",
    "families",
    "retries",
    "fail_share",
    "deadline_h",
];

pub fn parse(file: &str, text: &str) -> Result<Loaded, SimError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (_, header) = lines
        .next()
        .ok_or_else(|| SimError::line(file, 1, "empty file: expected a header"))?;
    let cols = columns(file, header, &REQUIRED, &OPTIONAL, false)?;
    let mut loaded = Loaded::default();
    for (line, text) in lines {
        if text.trim().is_empty() || text.starts_with('#') {
            continue;
        }
        super::check_count(file, line, loaded.raws.len())?;
        let cells = fields(file, line, text)?;
        let width = header.split(',').count();
        if cells.len() != width {
            return Err(SimError::line(
                file,
                line,
                format!("{} fields, the header has {width}", cells.len()),
            ));
        }
        let cell = |k: usize| cols[k].map(|at| cells[at]).filter(|c| !c.is_empty());
        let req = |k: usize| {
            cell(k).ok_or_else(|| SimError::line(file, line, format!("{}: empty", REQUIRED[k])))
        };
        let at_s = number(file, line, "submit_s", req(0)?)?;
        if at_s < 0.0 {
            return Err(SimError::line(file, line, "submit_s: must be >= 0"));
        }
        let kind = JobKind::parse(req(1)?)
            .ok_or_else(|| SimError::line(file, line, "kind: must be batch, gang or service"))?;
        let resource = Kind::parse(req(2)?)
            .ok_or_else(|| SimError::line(file, line, "resource: must be cpu, gpu or hpc"))?;
        let mut raw = Raw::new(line, at_s, kind, resource);
        raw.tasks = whole(file, line, "tasks", req(3)?, 1, 100_000)?;
        raw.units = whole(file, line, "units", req(4)?, 1, 100_000)?;
        raw.duration_s = number(file, line, "duration_s", req(5)?)?;
        if raw.duration_s <= 0.0 || raw.duration_s > 3.6e7 {
            return Err(SimError::line(
                file,
                line,
                "duration_s: must be in (0, 36000000]",
            ));
        }
        raw.qos = if kind == JobKind::Service {
            Qos::Latency
        } else {
            Qos::Normal
        };
        let opt = |k: usize| cell(REQUIRED.len() + k);
        if let Some(c) = opt(0) {
            raw.bid_yuan_per_unit_hour = Some(number(file, line, OPTIONAL[0], c)?);
        }
        raw.origin = opt(1).map(str::to_owned);
        raw.data_region = opt(2).map(str::to_owned);
        if let Some(c) = opt(3) {
            raw.data_gb = Some(number(file, line, OPTIONAL[3], c)?);
        }
        if let Some(c) = opt(4) {
            raw.latency_ms_max = Some(if c == "none" {
                None
            } else {
                Some(number(file, line, OPTIONAL[4], c)?)
            });
        }
        let list = |c: &str| {
            c.split('|')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        };
        raw.allowed_regions = opt(5).map(list);
        raw.families = opt(6).map(list);
        if let Some(c) = opt(7) {
            raw.retries = Some(whole(file, line, OPTIONAL[7], c, 0, 100)? as u32);
        }
        if let Some(c) = opt(8) {
            let share = number(file, line, OPTIONAL[8], c)?;
            if !(0.0..=1.0).contains(&share) {
                return Err(SimError::line(file, line, "fail_share: must be in [0, 1]"));
            }
            raw.fail_share = share;
        }
        if let Some(c) = opt(9) {
            let hours = number(file, line, OPTIONAL[9], c)?;
            if hours <= 0.0 || hours > 1e5 {
                return Err(SimError::line(
                    file,
                    line,
                    "deadline_h: must be in (0, 100000]",
                ));
            }
            raw.deadline_h = Some(hours);
        }
        loaded.raws.push(raw);
    }
    Ok(loaded)
}
