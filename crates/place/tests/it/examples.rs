//! The national examples in `tests/data` against its `REFERENCE.md`: greedy to
//! the cent, the market within a margin of the exact optimum (S) or the LP
//! bound (M), and the market's own certificate on M.

use std::path::PathBuf;

use suanwang_place::{check, format, greedy, solve, Problem};

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
}

/// The example problem `name`, shipped in `tests/data` (see its README).
fn example(name: &str) -> Problem {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    format::read_problem(&text)
        .unwrap_or_else(|error| panic!("{} is not a valid problem: {error}", path.display()))
}

struct Expected {
    file: &'static str,
    pools: usize,
    classes: usize,
    tasks: u64,
    /// REFERENCE.md's greedy welfare, to the cent.
    greedy_welfare: &'static str,
    /// The market must reach this welfare.
    market_welfare_min: f64,
    /// The market's own certificate, when asserted.
    ratio_min: Option<f64>,
}

fn run(expected: &Expected) {
    let problem = example(expected.file);
    assert_eq!(problem.pools.len(), expected.pools, "{}", expected.file);
    assert_eq!(problem.classes.len(), expected.classes, "{}", expected.file);
    assert_eq!(problem.task_count(), expected.tasks, "{}", expected.file);

    let baseline = greedy::solve(&problem);
    let report = crate::assert_feasible(&problem, &baseline, "greedy");
    assert_eq!(
        format!("{:.2}", report.welfare),
        expected.greedy_welfare,
        "{}: greedy welfare",
        expected.file
    );

    let market = solve::solve(&problem, None);
    let report = crate::assert_feasible(&problem, &market, "market");
    assert!(
        report.welfare >= expected.market_welfare_min,
        "{}: market welfare {:.2} below {:.2}",
        expected.file,
        report.welfare,
        expected.market_welfare_min
    );
    assert!(
        report.bound >= report.welfare,
        "{}: bound {:.2} below welfare {:.2}",
        expected.file,
        report.bound,
        report.welfare
    );
    if let Some(ratio_min) = expected.ratio_min {
        assert!(
            report.ratio() >= ratio_min,
            "{}: welfare {:.2} / bound {:.2} = {:.5} below {ratio_min}",
            expected.file,
            report.welfare,
            report.bound,
            report.ratio()
        );
    }
    let indexed = report.bound;
    let pairs = check::bound_by_pairs(&problem, &market.prices_yuan_per_unit_hour);
    assert!(
        (indexed - pairs).abs() <= 1e-9 * indexed.abs().max(1.0),
        "{}: indexed bound {indexed} pairwise {pairs}",
        expected.file
    );
}

#[test]
fn national_s() {
    run(&Expected {
        file: "national-s.json",
        pools: 60,
        classes: 300,
        tasks: 8_343,
        greedy_welfare: "68777.20",
        // 99 % of the exact optimum 91,322.54.
        market_welfare_min: 0.99 * 91_322.54,
        ratio_min: None,
    });
}

#[test]
fn national_m() {
    run(&Expected {
        file: "national-m.json",
        pools: 500,
        classes: 5_000,
        tasks: 149_206,
        greedy_welfare: "3211148.93",
        // 99.5 % of the LP bound 3,513,768.87.
        market_welfare_min: 0.995 * 3_513_768.87,
        ratio_min: Some(0.99),
    });
}
