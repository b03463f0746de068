//! Every scenario in `examples/sim` reads and runs (the long ones under the
//! market policy alone, to keep the suite quick).

use suanwang_sim::{Policy, Setup};

fn run(name: &str, policies: &[Policy]) -> String {
    let setup = Setup::read(&crate::examples_dir().join(name), None)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!setup.arrivals.is_empty(), "{name}");
    let (json, outcomes) = crate::run_all(&setup, policies);
    for o in &outcomes {
        assert!(
            o.measures.tasks_placed > 0,
            "{name}: {:?} placed nothing",
            o.policy
        );
    }
    json
}

#[test]
fn alibaba_sample_on_the_national_network() {
    let json = run("alibaba-national.toml", &Policy::ALL);
    assert!(json.contains("\"jobs\": 8152"), "all 8,152 pods");
}

#[test]
fn film_render_season() {
    run("film-render.toml", &Policy::ALL);
}

#[test]
fn hub_outage() {
    let json = run("hub-outage.toml", &[Policy::Market]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        report["policies"][0]["failures"]["tasks_lost"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn west_capacity_what_if_lowers_prices() {
    let price = |name: &str| {
        let json = run(name, &[Policy::Market]);
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        report["policies"][0]["price_yuan_per_unit_hour"]["gpu"]
            .as_f64()
            .unwrap()
    };
    let (base, more) = (
        price("whatif-west-base.toml"),
        price("whatif-west-more-west.toml"),
    );
    assert!(
        more < base,
        "more western capacity: gpu price {more} vs {base}"
    );
}
