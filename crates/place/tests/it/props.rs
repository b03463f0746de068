//! Properties of both solvers on random small problems: feasibility, the
//! price certificate, stability under re-solving, determinism, the solution
//! format's round trip, and an exact optimum found by brute force.

use proptest::prelude::*;
use proptest::sample::subsequence;
use suanwang_place::index::Index;
use suanwang_place::{check, format, greedy, solve, Class, Kind, Pool, Problem, Region, Solution};

use crate::assert_feasible;

const CASES: u32 = 128;

/// Brute force gives up (and the case is skipped) beyond this many
/// placements, counted as the product of the choices of each class.
const SEARCH_SPACE_MAX: u64 = 200_000;

/// Family names: pools use the first two, classes may also ask for the third,
/// which no pool has.
const FAMILY_NAMES: [&str; 3] = ["fa", "fb", "fc"];

fn kind(index: usize) -> Kind {
    Kind::ALL[index]
}

#[derive(Clone, Debug)]
struct PoolSpec {
    region: usize,
    kind: usize,
    family: usize,
    capacity: u64,
    price: f64,
    power_kw_per_unit: f64,
    pue: f64,
    grid_kg_co2_per_kwh: f64,
}

#[derive(Clone, Debug)]
struct ClassSpec {
    kind: usize,
    families: Vec<usize>,
    count: u64,
    units: u64,
    hours: f64,
    bid: f64,
    origin: usize,
    max_latency_ms: Option<f64>,
    data_region: usize,
    data_gb: f64,
    allowed_regions: Option<Vec<usize>>,
    gang: bool,
}

fn pool_spec(regions: usize) -> impl Strategy<Value = PoolSpec> {
    (
        0..regions,
        0..3usize,
        0..2usize,
        prop_oneof![1 => Just(0u64), 7 => 0..=40u64],
        prop_oneof![1 => Just(0.0), 4 => 0.0..10.0f64],
        prop_oneof![Just(0.0), 0.0..1.0f64],
        1.0..2.0f64,
        0.0..1.0f64,
    )
        .prop_map(
            |(region, kind, family, capacity, price, power_kw_per_unit, pue, grid)| PoolSpec {
                region,
                kind,
                family,
                capacity,
                price,
                power_kw_per_unit,
                pue,
                grid_kg_co2_per_kwh: grid,
            },
        )
}

fn class_spec(regions: usize) -> impl Strategy<Value = ClassSpec> {
    let all_regions: Vec<usize> = (0..regions).collect();
    (
        0..3usize,
        prop_oneof![2 => Just(Vec::new()), 1 => subsequence(vec![0usize, 1, 2], 1..=3)],
        1..=6u64,
        1..=8u64,
        1.0..50.0f64,
        0.0..20.0f64,
        0..regions,
        prop::option::weighted(0.3, 0.0..100.0f64),
        0..regions,
        prop_oneof![Just(0.0), 0.0..20.0f64],
        prop::option::weighted(0.3, subsequence(all_regions, 0..=regions)),
        prop::bool::weighted(0.25),
    )
        .prop_map(
            |(
                kind,
                families,
                count,
                units,
                hours,
                bid,
                origin,
                max_latency_ms,
                data_region,
                data_gb,
                allowed_regions,
                gang,
            )| ClassSpec {
                kind,
                families,
                count,
                units,
                hours,
                bid,
                origin,
                max_latency_ms,
                data_region,
                data_gb,
                allowed_regions,
                gang,
            },
        )
}

/// A random small problem, valid by construction and with the families
/// interned as the reader interns them (pools, then classes, first seen
/// first), so that it equals what reading its own file gives.
fn problem() -> impl Strategy<Value = Problem> {
    (1..=4usize)
        .prop_flat_map(|n| {
            (
                Just(n),
                prop::collection::vec(0.0..100.0f64, n * n),
                prop::collection::vec(prop_oneof![Just(0.0), 0.0..2.0f64], n * n),
                prop_oneof![Just(0.0), 0.0..0.2f64],
                prop::collection::vec(pool_spec(n), 1..=6),
                prop::collection::vec(class_spec(n), 1..=6),
            )
        })
        .prop_map(|(n, latency_ms, transfer, carbon, pools, classes)| {
            build(n, latency_ms, transfer, carbon, &pools, &classes)
        })
}

fn build(
    n: usize,
    latency_ms: Vec<f64>,
    transfer_yuan_per_gb: Vec<f64>,
    carbon_yuan_per_kg: f64,
    pools: &[PoolSpec],
    classes: &[ClassSpec],
) -> Problem {
    let mut families: Vec<String> = Vec::new();
    let mut intern = |name: usize| -> usize {
        let name = FAMILY_NAMES[name];
        match families.iter().position(|known| known == name) {
            Some(index) => index,
            None => {
                families.push(name.to_owned());
                families.len() - 1
            }
        }
    };
    let pools: Vec<Pool> = pools
        .iter()
        .enumerate()
        .map(|(i, spec)| Pool {
            id: format!("s{i}/p{i}"),
            site: format!("s{i}"),
            region: spec.region,
            kind: kind(spec.kind),
            family: intern(spec.family),
            capacity: spec.capacity,
            price_yuan_per_unit_hour: spec.price,
            power_kw_per_unit: spec.power_kw_per_unit,
            pue: spec.pue,
            grid_kg_co2_per_kwh: spec.grid_kg_co2_per_kwh,
        })
        .collect();
    let classes: Vec<Class> = classes
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut class_families: Vec<usize> =
                spec.families.iter().map(|&name| intern(name)).collect();
            class_families.sort_unstable();
            Class {
                id: format!("c{i}"),
                tenant: format!("t{}", i % 2),
                kind: kind(spec.kind),
                families: class_families,
                count: spec.count,
                units: spec.units,
                hours: spec.hours,
                bid_yuan_per_unit_hour: spec.bid,
                origin: spec.origin,
                max_latency_ms: spec.max_latency_ms,
                data_region: spec.data_region,
                data_gb: spec.data_gb,
                allowed_regions: spec.allowed_regions.clone(),
                gang: spec.gang,
            }
        })
        .collect();
    Problem {
        regions: (0..n)
            .map(|i| Region {
                id: format!("r{i}"),
                name: format!("Region {i}"),
                lat_deg: 20.0 + i as f64,
                lon_deg: 100.0 + i as f64,
            })
            .collect(),
        latency_ms,
        transfer_yuan_per_gb,
        carbon_yuan_per_kg,
        families,
        pools,
        classes,
    }
}

/// Random prices, some missing, some zero, some out of range (negative or
/// not finite: both bounds count those as 0).
fn prices(pools: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            4 => 0.0..20.0f64,
            2 => Just(0.0),
            1 => -5.0..0.0f64,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
        ],
        0..=pools + 1,
    )
}

fn welfare_of(problem: &Problem, solution: &Solution) -> f64 {
    check::check(problem, solution).welfare
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * a.abs().max(b.abs()).max(1.0)
}

/// The best welfare of any integer placement, by exhaustive search, or `None`
/// when the search space exceeds `SEARCH_SPACE_MAX`. Only pools where a task
/// has positive surplus are tried: placing a task anywhere else never helps.
fn brute_force(problem: &Problem) -> Option<f64> {
    let options: Vec<Vec<(usize, f64)>> = problem
        .classes
        .iter()
        .map(|class| {
            problem
                .pools
                .iter()
                .enumerate()
                .filter(|(_, pool)| problem.feasible(class, pool))
                .map(|(index, pool)| (index, problem.surplus(class, pool)))
                .filter(|(_, surplus)| *surplus > 0.0)
                .collect()
        })
        .collect();
    let mut space: u64 = 1;
    for (class, pools) in problem.classes.iter().zip(&options) {
        let choices = if class.gang {
            pools.len() as u64 + 1
        } else {
            // Ways to put at most `count` tasks into `k` pools: C(count + k, k).
            let k = pools.len() as u64;
            (1..=k).fold(1u64, |ways, i| ways * (class.count + i) / i)
        };
        space = space.saturating_mul(choices);
        if space > SEARCH_SPACE_MAX {
            return None;
        }
    }
    let mut search = Search {
        problem,
        options: &options,
        free: problem.pools.iter().map(|pool| pool.capacity).collect(),
        best: 0.0,
    };
    search.class(0, 0.0);
    Some(search.best)
}

struct Search<'a> {
    problem: &'a Problem,
    options: &'a [Vec<(usize, f64)>],
    free: Vec<u64>,
    best: f64,
}

impl Search<'_> {
    fn class(&mut self, class: usize, welfare: f64) {
        if class == self.problem.classes.len() {
            self.best = self.best.max(welfare);
            return;
        }
        let class_ref = &self.problem.classes[class];
        if class_ref.gang {
            self.class(class + 1, welfare);
            let block = class_ref.count * class_ref.units;
            for &(pool, surplus) in &self.options[class] {
                if self.free[pool] >= block {
                    self.free[pool] -= block;
                    self.class(class + 1, welfare + class_ref.count as f64 * surplus);
                    self.free[pool] += block;
                }
            }
        } else {
            self.tasks(class, 0, class_ref.count, welfare);
        }
    }

    /// Puts 0 up to `left` tasks of `class` into its `option`-th pool, then
    /// goes on with the next pool (or the next class).
    fn tasks(&mut self, class: usize, option: usize, left: u64, welfare: f64) {
        let Some(&(pool, surplus)) = self.options[class].get(option) else {
            self.class(class + 1, welfare);
            return;
        };
        let units = self.problem.classes[class].units;
        let most = left.min(self.free[pool] / units);
        for count in 0..=most {
            self.free[pool] -= count * units;
            self.tasks(
                class,
                option + 1,
                left - count,
                welfare + count as f64 * surplus,
            );
            self.free[pool] += count * units;
        }
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Both solvers give feasible placements of positive surplus only, and
    /// the bound of their prices is at least their welfare.
    #[test]
    fn solutions_are_feasible_and_certified(problem in problem()) {
        let market = solve::solve(&problem, None);
        let baseline = greedy::solve(&problem);
        for (name, solution) in [("market", &market), ("greedy", &baseline)] {
            let report = assert_feasible(&problem, solution, name);
            prop_assert_eq!(solution.prices_yuan_per_unit_hour.len(), problem.pools.len());
            for assignment in &solution.assignments {
                let class = &problem.classes[assignment.class];
                let surplus = problem.surplus(class, &problem.pools[assignment.pool]);
                prop_assert!(surplus > 0.0, "{}: {} placed at surplus {}", name, class.id, surplus);
            }
            let welfare = report.welfare;
            prop_assert!(
                report.bound >= welfare - 1e-6 * (1.0 + welfare.abs()),
                "{}: bound {} below welfare {}", name, report.bound, welfare
            );
            prop_assert!(welfare >= 0.0, "{}: welfare {}", name, welfare);
            prop_assert!(report.placed_tasks <= report.total_tasks);
        }
    }

    /// Re-solving with the previous solution keeps it; starting from the
    /// greedy placement never ends below it.
    #[test]
    fn resolving_is_stable(problem in problem()) {
        let solution = solve::solve(&problem, None);
        prop_assert_eq!(&solve::solve(&problem, Some(&solution)), &solution);
        let baseline = greedy::solve(&problem);
        let from_baseline = solve::solve(&problem, Some(&baseline));
        assert_feasible(&problem, &from_baseline, "market from greedy");
        let (new, old) = (welfare_of(&problem, &from_baseline), welfare_of(&problem, &baseline));
        prop_assert!(new >= old, "welfare {} from greedy's {}", new, old);
    }

    /// Same problem, same bytes; and the files read back to what was written.
    #[test]
    fn deterministic_and_round_trips(problem in problem()) {
        let problem_text = format::write_problem(&problem);
        let read_back = format::read_problem(&problem_text);
        prop_assert_eq!(read_back.as_ref(), Ok(&problem));
        let copy = problem.clone();
        for (name, first, second) in [
            ("market", solve::solve(&problem, None), solve::solve(&copy, None)),
            ("greedy", greedy::solve(&problem), greedy::solve(&copy)),
        ] {
            let text = format::write_solution(&first, &problem);
            prop_assert_eq!(&text, &format::write_solution(&second, &copy), "{}", name);
            let read_back = format::read_solution(&text, &problem);
            prop_assert_eq!(read_back.as_ref(), Ok(&first), "{}: {}", name, text);
        }
    }

    /// The exact optimum is at least what either solver finds, and at most
    /// the bound of any prices: the market's own, or random ones.
    #[test]
    fn brute_force_optimum_brackets_solvers(
        (problem, lam) in problem().prop_flat_map(|p| {
            let pools = p.pools.len();
            (Just(p), prices(pools))
        })
    ) {
        let optimum = brute_force(&problem);
        prop_assume!(optimum.is_some());
        let optimum = optimum.unwrap_or_default();
        let tolerance = 1e-9 * (1.0 + optimum.abs());
        let market = solve::solve(&problem, None);
        let market_report = check::check(&problem, &market);
        let greedy_welfare = welfare_of(&problem, &greedy::solve(&problem));
        prop_assert!(optimum >= market_report.welfare - tolerance,
            "market {} above the optimum {}", market_report.welfare, optimum);
        prop_assert!(optimum >= greedy_welfare - tolerance,
            "greedy {} above the optimum {}", greedy_welfare, optimum);
        prop_assert!(market_report.bound >= optimum - 1e-6 * (1.0 + optimum.abs()),
            "market prices certify {} below the optimum {}", market_report.bound, optimum);
        let random_bound = check::bound_by_pairs(&problem, &lam);
        prop_assert!(random_bound >= optimum - 1e-6 * (1.0 + optimum.abs()),
            "prices {:?} certify {} below the optimum {}", lam, random_bound, optimum);
    }

    /// The indexed bound and the pair-by-pair reference agree.
    #[test]
    fn indexed_bound_equals_pairwise_bound(
        (problem, lam) in problem().prop_flat_map(|p| {
            let pools = p.pools.len();
            (Just(p), prices(pools))
        })
    ) {
        let index = Index::new(&problem);
        let indexed = check::bound(&problem, &index, &lam);
        let pairs = check::bound_by_pairs(&problem, &lam);
        prop_assert!(close(indexed, pairs, 1e-9), "indexed {} pairs {} prices {:?}", indexed, pairs, lam);
        // The market's own prices too.
        let market = solve::solve(&problem, None);
        let prices = &market.prices_yuan_per_unit_hour;
        let (indexed, pairs) =
            (check::bound(&problem, &index, prices), check::bound_by_pairs(&problem, prices));
        prop_assert!(close(indexed, pairs, 1e-9), "indexed {} pairs {} prices {:?}", indexed, pairs, prices);
    }
}

#[test]
fn brute_force_finds_known_optimum() {
    // One pool of 10 units; class c0: 4 tasks x 3 units, surplus 3 each;
    // gang c1: 2 tasks x 4 units, surplus 8 each. The gang (16) leaves 2
    // units, too few for a task of c0; three tasks of c0 alone make 9.
    let problem = crate::read(&crate::two_regions(
        vec![crate::pool("s/p", "a", "cpu", "x86", 10, 1.0)],
        vec![
            crate::class("c0", "cpu", 4, 3, 2.0),
            crate::with(
                crate::class("c1", "cpu", 2, 4, 3.0),
                serde_json::json!({"gang": true}),
            ),
        ],
    ));
    let optimum = brute_force(&problem).expect("tiny search space");
    assert!(close(optimum, 16.0, 1e-12), "optimum {optimum}");
}

/// FORMAT.md's bound counts, for a class that is not a gang, every pool that
/// passes the filters, even one too small for a single task (regression: the
/// indexed bound once skipped pools with `capacity < units`, disagreeing with
/// the format and with `bound_by_pairs`).
#[test]
fn bound_counts_pools_too_small_for_one_task() {
    let problem = crate::read(&crate::two_regions(
        vec![
            crate::pool("a0/cpu", "a", "cpu", "x86", 0, 0.0),
            crate::pool("a1/cpu", "a", "cpu", "x86", 3, 0.5),
            crate::pool("a2/cpu", "a", "cpu", "x86", 10, 1.0),
        ],
        vec![crate::class("c", "cpu", 5, 4, 2.0)],
    ));
    let index = Index::new(&problem);
    // Best pool at zero prices: a0, surplus 4 x 2 = 8 per task, 5 tasks.
    let zero = vec![0.0; 3];
    assert!(close(check::bound(&problem, &index, &zero), 40.0, 1e-12));
    assert!(close(check::bound_by_pairs(&problem, &zero), 40.0, 1e-12));
    // Pricing a0 and a1 out leaves a2: 4 x (2 - 1) = 4 per task, plus the
    // capacity term 3 x 5 of a1.
    let priced = vec![5.0, 5.0, 0.0];
    assert!(close(check::bound(&problem, &index, &priced), 35.0, 1e-12));
    assert!(close(check::bound_by_pairs(&problem, &priced), 35.0, 1e-12));
}
