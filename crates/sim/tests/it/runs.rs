//! Whole runs: determinism, conservation, a hub outage.

use suanwang_core::lifecycle::JobState;
use suanwang_sim::Policy;

/// Three sites in two western hubs and one eastern; leases of 30 s.
pub const SITES: &str = r#"
name = "three sites"
seed = 9
round_s = 60
lease_ttl_s = 30
heartbeat_s = 10
horizon_h = 200

[[site]]
name = "guian-a"
region = "guian"
pue = 1.2
grid_kg_co2_per_kwh = 0.5
[[site.pool]]
name = "gpu"
kind = "gpu"
family = "ascend"
device_model = "Ascend 910B"
units = 64
price_yuan_per_unit_hour = 5.0
power_kw_per_unit = 0.4
[[site.pool]]
name = "cpu"
kind = "cpu"
family = "arm"
units = 256
price_yuan_per_unit_hour = 0.05
power_kw_per_unit = 0.007
[[site.pool]]
name = "hpc"
kind = "hpc"
family = "x86-fp64"
units = 32
price_yuan_per_unit_hour = 9.0
power_kw_per_unit = 0.8

[[site]]
name = "zhongwei-a"
region = "zhongwei"
pue = 1.15
grid_kg_co2_per_kwh = 0.64
[[site.pool]]
name = "gpu"
kind = "gpu"
family = "nvidia"
device_model = "H20"
units = 64
price_yuan_per_unit_hour = 6.0
power_kw_per_unit = 0.5
[[site.pool]]
name = "cpu"
kind = "cpu"
family = "x86"
units = 256
price_yuan_per_unit_hour = 0.06
power_kw_per_unit = 0.009
[[site.pool]]
name = "hpc"
kind = "hpc"
family = "x86-fp64"
units = 32
price_yuan_per_unit_hour = 10.0
power_kw_per_unit = 0.8

[[site]]
name = "wuhu-a"
region = "wuhu"
pue = 1.3
grid_kg_co2_per_kwh = 0.68
[[site.pool]]
name = "gpu"
kind = "gpu"
family = "nvidia"
device_model = "H100"
units = 16
price_yuan_per_unit_hour = 10.0
power_kw_per_unit = 0.7
[[site.pool]]
name = "cpu"
kind = "cpu"
family = "x86"
units = 128
price_yuan_per_unit_hour = 0.09
power_kw_per_unit = 0.011
"#;

/// Synthetic jobs that bid enough to be placed. Services end with their
/// window and have no retries (`workload::geo`), so one lost with its site
/// ends lost; `services = false` leaves them out.
fn workload(jobs: u64, fail_share: f64, services: bool) -> String {
    let service = if services { 0.2 } else { 0.0 };
    format!(
        "[[workload]]\nname = \"mixed\"\nsource = \"synthetic\"\njobs = {jobs}\nspan_h = 12\nhours_mean = 1.0\n\
         fail_share = {fail_share}\nbid_factor = [1.5, 3.0]\nretries = 3\nmix = {{ batch = 0.6, gang = 0.2, service = {service} }}\n"
    )
}

const OUTAGE: &str =
    "[[failure]]\nkind = \"site_down\"\nsite = \"guian-a\"\nfrom_h = 3\nto_h = 6\n\
    [[failure]]\nkind = \"partition\"\nsite = \"zhongwei-a\"\nfrom_h = 8\nto_h = 8.1\n";

#[test]
fn same_scenario_and_seed_same_bytes() {
    let text = format!("{SITES}{OUTAGE}{}", workload(200, 0.05, true));
    let a = crate::run_all(&crate::scenario(&text, &[]).unwrap(), &Policy::ALL).0;
    let b = crate::run_all(&crate::scenario(&text, &[]).unwrap(), &Policy::ALL).0;
    assert_eq!(a, b);
    // Another seed is another run.
    let other = crate::scenario(&text.replace("seed = 9", "seed = 10"), &[]).unwrap();
    assert_ne!(a, crate::run_all(&other, &Policy::ALL).0);
}

#[test]
fn every_job_ends_once_and_usage_is_what_ran() {
    let text = format!("{SITES}{OUTAGE}{}", workload(200, 0.05, true));
    let setup = crate::scenario(&text, &[]).unwrap();
    let (json, outcomes) = crate::run_all(&setup, &Policy::ALL);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    for (outcome, p) in outcomes.iter().zip(report["policies"].as_array().unwrap()) {
        // One final state per job that arrived; every one arrived.
        assert_eq!(outcome.finals.len(), setup.arrivals.len());
        assert_eq!(outcome.not_arrived, 0);
        let jobs = &p["jobs"];
        let sum = jobs["succeeded"].as_u64().unwrap()
            + jobs["failed"].as_u64().unwrap()
            + jobs["cancelled"].as_u64().unwrap();
        assert_eq!(sum as usize, setup.arrivals.len(), "{}", p["policy"]);
        // Metered usage is exactly the attempts whose final report was taken.
        let m = &outcome.measures;
        assert_eq!(m.usage_unit_ms, m.reported_unit_ms, "{}", p["policy"]);
        assert!(m.usage_unit_ms > 0);
        // What ran is what was metered plus what was lost or stopped.
        let run: u128 = m.run_unit_ms.iter().sum();
        assert!(run >= m.usage_unit_ms);
        assert!(
            outcome.cut_at_end == 0,
            "{}: {:?}",
            p["policy"],
            outcome.cut_reasons
        );
    }
}

#[test]
fn a_hub_outage_loses_tasks_and_places_them_again() {
    let text = format!(
        "{SITES}[[failure]]\nkind = \"region_down\"\nregion = \"guian\"\nfrom_h = 2\nto_h = 5\n{}",
        workload(150, 0.0, false)
    );
    let setup = crate::scenario(&text, &[]).unwrap();
    let (_, outcomes) = crate::run_all(&setup, &Policy::ALL);
    for outcome in &outcomes {
        assert!(
            outcome.measures.tasks_lost > 0,
            "{:?}: the hub held work when it went down",
            outcome.policy
        );
        assert!(outcome.measures.rerun_unit_ms > 0);
        // Nothing is lost for good: every job still succeeds.
        assert!(
            outcome.finals.iter().all(|s| *s == JobState::Succeeded),
            "{:?}: {:?} / {:?}",
            outcome.policy,
            outcome
                .finals
                .iter()
                .filter(|s| **s != JobState::Succeeded)
                .count(),
            outcome.cut_reasons
        );
    }
}
