//! Integration tests of the placement engine, one binary:
//! - `props`: properties of both solvers on random small problems, checked
//!   against a brute-force optimum;
//! - `edge`: edge cases, one table;
//! - `explain`: snapshots of rendered explanations;
//! - `examples`: the national examples in `tests/data` against their reference values.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Exact comparisons are deliberate here: an empty round has bound 0.0, not
// about 0.0, and an uncongested pool has price 0.0.
#![allow(clippy::float_cmp)]

mod edge;
mod examples;
mod explain;
mod props;

use serde_json::{json, Value};
use suanwang_place::{check, format, Problem, Solution};

/// Reads a problem written as JSON, failing the test with the reader's error.
pub fn read(problem: &Value) -> Problem {
    let text = problem.to_string();
    format::read_problem(&text).unwrap_or_else(|error| panic!("bad test problem: {error}\n{text}"))
}

/// A pool with no carbon cost (power 0), so surplus is `units * (bid - price)
/// - transfer`.
pub fn pool(id: &str, region: &str, kind: &str, family: &str, capacity: u64, price: f64) -> Value {
    json!({
        "id": id, "site": id.split('/').next().unwrap_or(id), "region": region,
        "kind": kind, "family": family, "capacity": capacity,
        "price_yuan_per_unit_hour": price, "power_kw_per_unit": 0.0,
        "pue": 1.0, "grid_kg_co2_per_kwh": 0.0
    })
}

/// A class of any family, no latency bound, no residency, no data, not a gang.
pub fn class(id: &str, kind: &str, count: u64, units: u64, bid: f64) -> Value {
    json!({
        "id": id, "tenant": "t", "kind": kind, "families": [],
        "count": count, "units": units, "hours": 1.0, "bid_yuan_per_unit_hour": bid,
        "origin": "a", "max_latency_ms": null, "data_region": "a", "data_gb": 0.0,
        "allowed_regions": null, "gang": false
    })
}

/// `value` with the fields of `changes` replaced.
pub fn with(mut value: Value, changes: Value) -> Value {
    if let (Value::Object(map), Value::Object(changes)) = (&mut value, changes) {
        map.extend(changes);
    }
    value
}

/// A problem over two regions `a` and `b` (latency 30 ms, transfer 0.5
/// yuan/GB between them), no carbon price.
pub fn two_regions(pools: Vec<Value>, classes: Vec<Value>) -> Value {
    json!({
        "format": "suanwang.placement/v1",
        "regions": [
            {"id": "a", "name": "Region A", "lat": 30.0, "lon": 110.0},
            {"id": "b", "name": "Region B", "lat": 40.0, "lon": 116.0}
        ],
        "latency_ms": [[1.0, 30.0], [30.0, 1.0]],
        "transfer_yuan_per_gb": [[0.0, 0.5], [0.5, 0.0]],
        "carbon_yuan_per_kg": 0.0,
        "pools": pools,
        "classes": classes
    })
}

/// Checks a solution and fails the test, listing the violations, when it is
/// not feasible.
pub fn assert_feasible(problem: &Problem, solution: &Solution, what: &str) -> check::Report {
    let report = check::check(problem, solution);
    assert!(
        report.feasible,
        "{what}: {} violations: {:?}",
        report.violation_count, report.violations
    );
    report
}
