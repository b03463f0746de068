//! Snapshots of `explain::render`: what a tenant reads when asking "why is my
//! job pending?". Each case is a small problem in the file format, solved by
//! the market solver; the snapshot is the explanation of one class.
//!
//! Every problem has two regions, `a` and `b`, 30 ms and 0.5 yuan/GB apart,
//! and no carbon price, so the numbers in the snapshots can be checked by hand.

use suanwang_place::{explain, format, solve};

/// Reads `problem_json`, solves it, checks the solution, and renders the
/// explanation of class `class_id`.
fn check(problem_json: &str, class_id: &str) -> String {
    let problem = format::read_problem(problem_json)
        .unwrap_or_else(|error| panic!("bad test problem: {error}"));
    let solution = solve::solve(&problem, None);
    crate::assert_feasible(&problem, &solution, class_id);
    let class = problem
        .classes
        .iter()
        .position(|class| class.id == class_id)
        .unwrap_or_else(|| panic!("no class {class_id}"));
    let explanation = explain::explain(&problem, &solution, class);
    explain::render(&problem, &solution, &explanation)
}

#[test]
fn placed_class() {
    // 4 tasks x 2 units fit in the 10 units of a1.
    let text = check(
        r#"{
          "format": "suanwang.placement/v1",
          "regions": [{"id": "a", "name": "A", "lat": 30, "lon": 110}, {"id": "b", "name": "B", "lat": 40, "lon": 116}],
          "latency_ms": [[1, 30], [30, 1]], "transfer_yuan_per_gb": [[0, 0.5], [0.5, 0]], "carbon_yuan_per_kg": 0,
          "pools": [
            {"id": "a1/cpu", "site": "a1", "region": "a", "kind": "cpu", "family": "x86", "capacity": 10,
             "price_yuan_per_unit_hour": 1, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}
          ],
          "classes": [
            {"id": "web", "tenant": "t1", "kind": "cpu", "families": [], "count": 4, "units": 2, "hours": 1,
             "bid_yuan_per_unit_hour": 3, "origin": "a", "max_latency_ms": null, "data_region": "a", "data_gb": 0,
             "allowed_regions": null, "gang": false}
          ]
        }"#,
        "web",
    );
    insta::assert_snapshot!(text);
}

#[test]
fn bid_below_list_price() {
    // The pool is empty (price 0 on top of its list price 5), but the bid is 3.
    let text = check(
        r#"{
          "format": "suanwang.placement/v1",
          "regions": [{"id": "a", "name": "A", "lat": 30, "lon": 110}, {"id": "b", "name": "B", "lat": 40, "lon": 116}],
          "latency_ms": [[1, 30], [30, 1]], "transfer_yuan_per_gb": [[0, 0.5], [0.5, 0]], "carbon_yuan_per_kg": 0,
          "pools": [
            {"id": "a1/gpu-nvidia", "site": "a1", "region": "a", "kind": "gpu", "family": "nvidia", "capacity": 16,
             "price_yuan_per_unit_hour": 5, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}
          ],
          "classes": [
            {"id": "cheap", "tenant": "t1", "kind": "gpu", "families": [], "count": 2, "units": 4, "hours": 1,
             "bid_yuan_per_unit_hour": 3, "origin": "a", "max_latency_ms": null, "data_region": "a", "data_gb": 0,
             "allowed_regions": null, "gang": false}
          ]
        }"#,
        "cheap",
    );
    insta::assert_snapshot!(text);
}

#[test]
fn out_of_capacity() {
    // Two classes compete for the 10 units of a1. "rich" (3 tasks x 2 units,
    // bid 10) takes 6; the 4 left are too few for one task of "poor" (5
    // units, bid 3), which would be worth 2 per unit at the market price 0.
    // Placing "poor" and two tasks of "rich" would be worth 10 + 36 < 54.
    let text = check(
        r#"{
          "format": "suanwang.placement/v1",
          "regions": [{"id": "a", "name": "A", "lat": 30, "lon": 110}, {"id": "b", "name": "B", "lat": 40, "lon": 116}],
          "latency_ms": [[1, 30], [30, 1]], "transfer_yuan_per_gb": [[0, 0.5], [0.5, 0]], "carbon_yuan_per_kg": 0,
          "pools": [
            {"id": "a1/cpu", "site": "a1", "region": "a", "kind": "cpu", "family": "x86", "capacity": 10,
             "price_yuan_per_unit_hour": 1, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}
          ],
          "classes": [
            {"id": "rich", "tenant": "t1", "kind": "cpu", "families": [], "count": 3, "units": 2, "hours": 1,
             "bid_yuan_per_unit_hour": 10, "origin": "a", "max_latency_ms": null, "data_region": "a", "data_gb": 0,
             "allowed_regions": null, "gang": false},
            {"id": "poor", "tenant": "t2", "kind": "cpu", "families": [], "count": 1, "units": 5, "hours": 1,
             "bid_yuan_per_unit_hour": 3, "origin": "a", "max_latency_ms": null, "data_region": "a", "data_gb": 0,
             "allowed_regions": null, "gang": false}
          ]
        }"#,
        "poor",
    );
    insta::assert_snapshot!(text);
}

#[test]
fn latency_filter() {
    // b1 is cheaper but 30 ms from the origin a; the bound is 10 ms.
    let text = check(
        r#"{
          "format": "suanwang.placement/v1",
          "regions": [{"id": "a", "name": "A", "lat": 30, "lon": 110}, {"id": "b", "name": "B", "lat": 40, "lon": 116}],
          "latency_ms": [[1, 30], [30, 1]], "transfer_yuan_per_gb": [[0, 0.5], [0.5, 0]], "carbon_yuan_per_kg": 0,
          "pools": [
            {"id": "b1/gpu-nvidia", "site": "b1", "region": "b", "kind": "gpu", "family": "nvidia", "capacity": 64,
             "price_yuan_per_unit_hour": 2, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0},
            {"id": "a1/gpu-nvidia", "site": "a1", "region": "a", "kind": "gpu", "family": "nvidia", "capacity": 8,
             "price_yuan_per_unit_hour": 4, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}
          ],
          "classes": [
            {"id": "infer", "tenant": "t1", "kind": "gpu", "families": [], "count": 2, "units": 4, "hours": 1,
             "bid_yuan_per_unit_hour": 6, "origin": "a", "max_latency_ms": 10, "data_region": "a", "data_gb": 0,
             "allowed_regions": null, "gang": false}
          ]
        }"#,
        "infer",
    );
    insta::assert_snapshot!(text);
}

#[test]
fn residency_filter() {
    // The data may only be processed in b. a1 is removed; b1 costs 4 plus
    // the transfer of 10 GB from a over 2 hours: 2.5 per task of 1 unit.
    // The bid of 6 is below the 6.5 needed.
    let text = check(
        r#"{
          "format": "suanwang.placement/v1",
          "regions": [{"id": "a", "name": "A", "lat": 30, "lon": 110}, {"id": "b", "name": "B", "lat": 40, "lon": 116}],
          "latency_ms": [[1, 30], [30, 1]], "transfer_yuan_per_gb": [[0, 0.5], [0.5, 0]], "carbon_yuan_per_kg": 0,
          "pools": [
            {"id": "a1/cpu", "site": "a1", "region": "a", "kind": "cpu", "family": "x86", "capacity": 100,
             "price_yuan_per_unit_hour": 1, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0},
            {"id": "b1/cpu", "site": "b1", "region": "b", "kind": "cpu", "family": "x86", "capacity": 100,
             "price_yuan_per_unit_hour": 4, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}
          ],
          "classes": [
            {"id": "health", "tenant": "t1", "kind": "cpu", "families": [], "count": 3, "units": 1, "hours": 2,
             "bid_yuan_per_unit_hour": 6, "origin": "a", "max_latency_ms": null, "data_region": "a", "data_gb": 10,
             "allowed_regions": ["b"], "gang": false}
          ]
        }"#,
        "health",
    );
    insta::assert_snapshot!(text);
}

#[test]
fn family_filter() {
    // Only ascend accelerators will do: the cheaper nvidia pool is removed.
    let text = check(
        r#"{
          "format": "suanwang.placement/v1",
          "regions": [{"id": "a", "name": "A", "lat": 30, "lon": 110}, {"id": "b", "name": "B", "lat": 40, "lon": 116}],
          "latency_ms": [[1, 30], [30, 1]], "transfer_yuan_per_gb": [[0, 0.5], [0.5, 0]], "carbon_yuan_per_kg": 0,
          "pools": [
            {"id": "a1/gpu-nvidia", "site": "a1", "region": "a", "kind": "gpu", "family": "nvidia", "capacity": 64,
             "price_yuan_per_unit_hour": 3, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0},
            {"id": "a2/gpu-ascend", "site": "a2", "region": "a", "kind": "gpu", "family": "ascend", "capacity": 16,
             "price_yuan_per_unit_hour": 4, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}
          ],
          "classes": [
            {"id": "train", "tenant": "t1", "kind": "gpu", "families": ["ascend"], "count": 2, "units": 8, "hours": 24,
             "bid_yuan_per_unit_hour": 6, "origin": "a", "max_latency_ms": null, "data_region": "a", "data_gb": 0,
             "allowed_regions": null, "gang": true}
          ]
        }"#,
        "train",
    );
    insta::assert_snapshot!(text);
}

#[test]
fn no_candidate() {
    // Every pool fails a different filter, in the order they are applied.
    let text = check(
        r#"{
          "format": "suanwang.placement/v1",
          "regions": [{"id": "a", "name": "A", "lat": 30, "lon": 110}, {"id": "b", "name": "B", "lat": 40, "lon": 116}],
          "latency_ms": [[1, 30], [30, 1]], "transfer_yuan_per_gb": [[0, 0.5], [0.5, 0]], "carbon_yuan_per_kg": 0,
          "pools": [
            {"id": "a1/cpu", "site": "a1", "region": "a", "kind": "cpu", "family": "x86", "capacity": 100,
             "price_yuan_per_unit_hour": 0.1, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0},
            {"id": "a2/gpu-nvidia", "site": "a2", "region": "a", "kind": "gpu", "family": "nvidia", "capacity": 64,
             "price_yuan_per_unit_hour": 3, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0},
            {"id": "b1/gpu-ascend", "site": "b1", "region": "b", "kind": "gpu", "family": "ascend", "capacity": 64,
             "price_yuan_per_unit_hour": 3, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}
          ],
          "classes": [
            {"id": "robot", "tenant": "t1", "kind": "gpu", "families": ["ascend"], "count": 1, "units": 2, "hours": 1,
             "bid_yuan_per_unit_hour": 20, "origin": "a", "max_latency_ms": 5, "data_region": "a", "data_gb": 0,
             "allowed_regions": null, "gang": false}
          ]
        }"#,
        "robot",
    );
    insta::assert_snapshot!(text);
}

#[test]
fn gang_too_big() {
    // 4 x 8 = 32 accelerators at once; the largest pool has 24.
    let text = check(
        r#"{
          "format": "suanwang.placement/v1",
          "regions": [{"id": "a", "name": "A", "lat": 30, "lon": 110}, {"id": "b", "name": "B", "lat": 40, "lon": 116}],
          "latency_ms": [[1, 30], [30, 1]], "transfer_yuan_per_gb": [[0, 0.5], [0.5, 0]], "carbon_yuan_per_kg": 0,
          "pools": [
            {"id": "a1/gpu-nvidia", "site": "a1", "region": "a", "kind": "gpu", "family": "nvidia", "capacity": 16,
             "price_yuan_per_unit_hour": 3, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0},
            {"id": "b1/gpu-nvidia", "site": "b1", "region": "b", "kind": "gpu", "family": "nvidia", "capacity": 24,
             "price_yuan_per_unit_hour": 3, "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}
          ],
          "classes": [
            {"id": "llm", "tenant": "t1", "kind": "gpu", "families": [], "count": 4, "units": 8, "hours": 48,
             "bid_yuan_per_unit_hour": 12, "origin": "a", "max_latency_ms": null, "data_region": "a", "data_gb": 0,
             "allowed_regions": null, "gang": true}
          ]
        }"#,
        "llm",
    );
    insta::assert_snapshot!(text);
}

#[test]
fn many_pools_removed() {
    // Ten nvidia pools for a class that takes only ascend: eight are listed
    // by id, the other two counted.
    let pools: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"id": "a{i}/gpu-nvidia", "site": "a{i}", "region": "a", "kind": "gpu",
                 "family": "nvidia", "capacity": 10, "price_yuan_per_unit_hour": 1,
                 "power_kw_per_unit": 0, "pue": 1, "grid_kg_co2_per_kwh": 0}}"#
            )
        })
        .collect();
    let problem = format!(
        r#"{{
          "format": "suanwang.placement/v1",
          "regions": [{{"id": "a", "name": "A", "lat": 30, "lon": 110}}],
          "latency_ms": [[1]], "transfer_yuan_per_gb": [[0]], "carbon_yuan_per_kg": 0,
          "pools": [{}],
          "classes": [
            {{"id": "vision", "tenant": "t1", "kind": "gpu", "families": ["ascend"], "count": 1,
             "units": 1, "hours": 1, "bid_yuan_per_unit_hour": 20, "origin": "a",
             "max_latency_ms": null, "data_region": "a", "data_gb": 0, "allowed_regions": null,
             "gang": false}}
          ]
        }}"#,
        pools.join(",")
    );
    let text = check(&problem, "vision");
    insta::assert_snapshot!(text);
}
