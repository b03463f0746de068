//! Edge cases, one table: each problem is solved by both solvers, checked,
//! and compared with the placed task count and welfare it must give.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use suanwang_place::explain::{self, Verdict};
use suanwang_place::{check, format, greedy, solve, Filter, Problem, Solution};

use crate::{assert_feasible, class, pool, read, two_regions, with};

struct Case {
    name: &'static str,
    problem: Value,
    placed_tasks: u64,
    welfare: f64,
    /// More assertions on the market solution.
    extra: Option<fn(&Problem, &Solution)>,
}

/// Solves `case` with both solvers and checks what every case must satisfy.
fn run(case: &Case) {
    let problem = read(&case.problem);
    let started = Instant::now();
    let solutions = [
        ("market", solve::solve(&problem, None)),
        ("greedy", greedy::solve(&problem)),
    ];
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "{}: solving took {elapsed:?}",
        case.name
    );
    for (solver, solution) in &solutions {
        let what = format!("{} ({solver})", case.name);
        let report = assert_feasible(&problem, solution, &what);
        assert_eq!(
            report.placed_tasks, case.placed_tasks,
            "{what}: placed tasks"
        );
        let tolerance = 1e-9 * case.welfare.abs().max(1.0);
        assert!(
            (report.welfare - case.welfare).abs() <= tolerance,
            "{what}: welfare {} expected {}",
            report.welfare,
            case.welfare
        );
        assert!(
            report.bound >= report.welfare - tolerance,
            "{what}: bound {} below welfare {}",
            report.bound,
            report.welfare
        );
        assert_eq!(
            solution.prices_yuan_per_unit_hour.len(),
            problem.pools.len(),
            "{what}: one price per pool"
        );
        let text = format::write_solution(solution, &problem);
        assert_eq!(
            format::read_solution(&text, &problem).as_ref(),
            Ok(solution),
            "{what}: round trip of {text}"
        );
        // Every class can be explained, placed or not.
        for class in 0..problem.classes.len() {
            let explanation = explain::explain(&problem, solution, class);
            let rendered = explain::render(&problem, solution, &explanation);
            assert!(
                rendered.contains(&problem.classes[class].id),
                "{what}: {rendered}"
            );
        }
    }
    if let Some(extra) = case.extra {
        extra(&problem, &solutions[0].1);
    }
}

fn bound_of(problem: &Problem, solution: &Solution) -> f64 {
    check::check(problem, solution).bound
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "empty problem: no regions, pools or classes",
            problem: json!({
                "format": "suanwang.placement/v1", "regions": [], "latency_ms": [],
                "transfer_yuan_per_gb": [], "carbon_yuan_per_kg": 0.0,
                "pools": [], "classes": []
            }),
            placed_tasks: 0,
            welfare: 0.0,
            extra: Some(|problem, solution| {
                assert!(solution.assignments.is_empty());
                assert_eq!(bound_of(problem, solution), 0.0);
                assert_eq!(check::check(problem, solution).ratio(), 1.0);
            }),
        },
        Case {
            name: "no pools, no classes",
            problem: two_regions(vec![], vec![]),
            placed_tasks: 0,
            welfare: 0.0,
            extra: None,
        },
        Case {
            name: "classes but no pools",
            problem: two_regions(vec![], vec![class("c", "cpu", 3, 2, 5.0)]),
            placed_tasks: 0,
            welfare: 0.0,
            extra: Some(|problem, solution| assert_eq!(bound_of(problem, solution), 0.0)),
        },
        Case {
            name: "all capacity zero",
            problem: two_regions(
                vec![
                    pool("a1/cpu", "a", "cpu", "x86", 0, 0.0),
                    pool("b1/gpu", "b", "gpu", "nvidia", 0, 2.0),
                ],
                vec![
                    class("c", "cpu", 5, 1, 1.5),
                    class("g", "gpu", 2, 8, 9.0),
                    with(class("h", "gpu", 2, 4, 7.0), json!({"gang": true})),
                ],
            ),
            placed_tasks: 0,
            welfare: 0.0,
            extra: Some(|problem, solution| {
                // Nothing fits anywhere, and the prices prove it.
                let bound = bound_of(problem, solution);
                assert!(bound.abs() <= 1e-9, "bound {bound}");
                for price in &solution.prices_yuan_per_unit_hour {
                    assert!(price.is_finite() && *price >= 0.0, "price {price}");
                }
            }),
        },
        Case {
            name: "every class infeasible: kind mismatch",
            problem: two_regions(
                vec![pool("a1/cpu", "a", "cpu", "x86", 100, 0.1)],
                vec![class("g", "gpu", 4, 1, 10.0), class("h", "hpc", 1, 2, 10.0)],
            ),
            placed_tasks: 0,
            welfare: 0.0,
            extra: Some(|problem, solution| {
                assert_eq!(bound_of(problem, solution), 0.0);
                let explanation = explain::explain(problem, solution, 0);
                assert_eq!(explanation.verdict, Verdict::NoCandidate);
                assert_eq!(explanation.removed, vec![(Filter::Kind, vec![0])]);
            }),
        },
        Case {
            name: "huge count fits: 1e9 tasks of 1 unit, 1e9 of 999 units, capacity 1e12",
            problem: two_regions(
                vec![pool("a1/cpu", "a", "cpu", "x86", 1_000_000_000_000, 1.0)],
                vec![
                    class("small", "cpu", 1_000_000_000, 1, 2.0),
                    class("large", "cpu", 1_000_000_000, 999, 3.0),
                ],
            ),
            placed_tasks: 2_000_000_000,
            // 1e9 x 1 x (2 - 1) + 1e9 x 999 x (3 - 1)
            welfare: 1e9 + 1.998e12,
            extra: None,
        },
        Case {
            name: "huge counts compete: 2e9 tasks for 1.5e9 units",
            problem: two_regions(
                vec![pool("a1/cpu", "a", "cpu", "x86", 1_500_000_000, 1.0)],
                vec![
                    class("high", "cpu", 1_000_000_000, 1, 3.0),
                    class("low", "cpu", 1_000_000_000, 1, 2.0),
                ],
            ),
            placed_tasks: 1_500_000_000,
            // 1e9 x (3 - 1) + 5e8 x (2 - 1)
            welfare: 2.5e9,
            extra: None,
        },
        Case {
            name: "huge gang: 1e9 x 1000 units in one pool of 1e12",
            problem: two_regions(
                vec![
                    pool("a1/gpu", "a", "gpu", "nvidia", 1_000_000_000_000, 1.0),
                    pool("a2/gpu", "a", "gpu", "nvidia", 999_999_999_999, 0.5),
                ],
                vec![with(
                    class("gang", "gpu", 1_000_000_000, 1000, 1.5),
                    json!({"gang": true}),
                )],
            ),
            placed_tasks: 1_000_000_000,
            // a2 is cheaper but one unit too small: 1e9 x 1000 x (1.5 - 1)
            welfare: 5e11,
            extra: Some(|_, solution| {
                assert_eq!(solution.assignments.len(), 1);
                assert_eq!(solution.assignments[0].pool, 0);
            }),
        },
        Case {
            name: "unicode ids",
            problem: json!({
                "format": "suanwang.placement/v1",
                "regions": [{"id": "贵安", "name": "贵安 (贵州)", "lat": 26.45, "lon": 106.45}],
                "latency_ms": [[0.3]],
                "transfer_yuan_per_gb": [[0.0]],
                "carbon_yuan_per_kg": 0.0,
                "pools": [{
                    "id": "贵安-01/gpu-昇腾", "site": "贵安-01", "region": "贵安",
                    "kind": "gpu", "family": "昇腾", "capacity": 16,
                    "price_yuan_per_unit_hour": 5.0, "power_kw_per_unit": 0.0,
                    "pue": 1.0, "grid_kg_co2_per_kwh": 0.0
                }],
                "classes": [{
                    "id": "训练任务-甲", "tenant": "租户/一", "kind": "gpu", "families": ["昇腾"],
                    "count": 3, "units": 4, "hours": 10.0, "bid_yuan_per_unit_hour": 7.5,
                    "origin": "贵安", "max_latency_ms": 5.0, "data_region": "贵安",
                    "data_gb": 0.0, "allowed_regions": ["贵安"], "gang": false
                }]
            }),
            placed_tasks: 3,
            // 3 x 4 x (7.5 - 5)
            welfare: 30.0,
            extra: Some(|problem, solution| {
                let text = format::write_solution(solution, problem);
                assert!(text.contains("\"贵安-01/gpu-昇腾\""), "{text}");
                assert!(text.contains("\"训练任务-甲\""), "{text}");
                let problem_text = format::write_problem(problem);
                assert_eq!(format::read_problem(&problem_text).as_ref(), Ok(problem));
                let rendered =
                    explain::render(problem, solution, &explain::explain(problem, solution, 0));
                assert!(
                    rendered.contains("placed 3 in 贵安-01/gpu-昇腾"),
                    "{rendered}"
                );
            }),
        },
        Case {
            name: "gang larger than every pool",
            problem: two_regions(
                vec![
                    pool("a1/gpu", "a", "gpu", "nvidia", 16, 1.0),
                    pool("b1/gpu", "b", "gpu", "nvidia", 24, 1.0),
                ],
                vec![
                    with(class("big", "gpu", 4, 8, 3.0), json!({"gang": true})),
                    class("loose", "gpu", 4, 8, 3.0),
                ],
            ),
            // The same tasks, not a gang, fit: 2 + 3 slots of 8 units.
            placed_tasks: 4,
            welfare: 4.0 * 8.0 * 2.0,
            extra: Some(|problem, solution| {
                assert!(solution.assignments.iter().all(|a| a.class == 1));
                let explanation = explain::explain(problem, solution, 0);
                assert_eq!(explanation.placed, 0);
                assert_eq!(explanation.verdict, Verdict::NoCandidate);
                assert_eq!(explanation.removed, vec![(Filter::GangTooBig, vec![0, 1])]);
                let rendered = explain::render(problem, solution, &explanation);
                assert!(
                    rendered.contains("gang big: 0 of 4 tasks placed"),
                    "{rendered}"
                );
                assert!(
                    rendered.contains("filter gang-too-big: 2 pools removed"),
                    "{rendered}"
                );
            }),
        },
        Case {
            name: "zero-capacity pool beside a free one",
            problem: two_regions(
                vec![
                    // Free but empty: if its price were 0 it would promise
                    // a surplus of 2 per task that nobody can have.
                    pool("a0/cpu", "a", "cpu", "x86", 0, 0.0),
                    pool("a1/cpu", "a", "cpu", "x86", 10, 1.0),
                ],
                vec![class("c", "cpu", 5, 1, 2.0)],
            ),
            placed_tasks: 5,
            welfare: 5.0,
            extra: Some(|problem, solution| {
                let prices = &solution.prices_yuan_per_unit_hour;
                assert_eq!(prices[1], 0.0, "capacity left over: no congestion");
                assert!(
                    prices[0].is_finite() && prices[0] >= 1.0,
                    "prices {prices:?}"
                );
                let report = check::check(problem, solution);
                assert!(report.ratio() >= 1.0 - 1e-9, "{report:?}");
            }),
        },
    ]
}

#[test]
fn edge_cases() {
    for case in cases() {
        run(&case);
    }
}

/// Fragmented capacity on a tiny round: the auction alone gives the pool to
/// the higher value per unit (3 x 18 = 54) and leaves 4 units no one can
/// use; the optimum is one 5-unit task (40) plus two 2-unit tasks (36). The
/// solver's greedy guard finds it, and the prices stay a valid certificate.
#[test]
fn market_not_below_a_greedy_order_on_fragments() {
    let problem = read(&two_regions(
        vec![pool("a1/cpu", "a", "cpu", "x86", 10, 1.0)],
        vec![
            class("small", "cpu", 3, 2, 10.0),
            class("big", "cpu", 1, 5, 9.0),
        ],
    ));
    let solution = solve::solve(&problem, None);
    let report = assert_feasible(&problem, &solution, "fragments");
    assert!((report.welfare - 76.0).abs() < 1e-9, "{report:?}");
    assert!(report.bound >= report.welfare, "{report:?}");
    assert!(solution.prices_yuan_per_unit_hour[0] >= 0.0);
    assert_eq!(solve::solve(&problem, Some(&solution)), solution);
}
