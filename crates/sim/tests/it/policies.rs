//! Every policy honours every hard constraint: on random national rounds
//! (the engine's generator: latency circles, residency, chip families,
//! gangs), each policy's placement passes `place::check`, written from the
//! format and not from any solver.

use proptest::prelude::*;
use suanwang_place::gen::{generate, GenParams};
use suanwang_sim::policy::{solve, Policy};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn policies_respect_hard_constraints(pools in 1usize..40, classes in 1usize..120, seed in any::<u64>()) {
        let problem = generate(&GenParams { pools, classes, seed });
        for policy in Policy::ALL {
            let solution = solve(policy, &problem);
            let report = suanwang_place::check::check(&problem, &solution);
            prop_assert!(report.feasible, "{}: {:?}", policy.as_str(), report.violations);
        }
    }
}

#[test]
fn nearest_prefers_low_latency_and_cheapest_low_price() {
    let problem = generate(&GenParams {
        pools: 60,
        classes: 300,
        seed: 42,
    });
    let mean = |policy: Policy, measure: &dyn Fn(usize, usize) -> f64| {
        let solution = solve(policy, &problem);
        let (mut sum, mut n) = (0.0, 0u64);
        for a in &solution.assignments {
            sum += measure(a.class, a.pool) * a.count as f64;
            n += a.count;
        }
        sum / n as f64
    };
    let latency =
        |c: usize, p: usize| problem.latency(problem.classes[c].origin, problem.pools[p].region);
    let price = |_: usize, p: usize| problem.pools[p].price_yuan_per_unit_hour;
    assert!(mean(Policy::Nearest, &latency) <= mean(Policy::Cheapest, &latency));
    assert!(mean(Policy::Cheapest, &price) <= mean(Policy::Nearest, &price));
}
