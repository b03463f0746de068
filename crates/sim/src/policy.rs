//! The placement policies the twin compares, all on the same round input.
//!
//! - `market`: the engine, through `core::round::plan` — the very function
//!   the server's scheduler calls.
//! - `greedy`: one job at a time in submit order, each task to the feasible
//!   pool of highest surplus (`place::greedy::solve_in_order`, the engine's
//!   own baseline).
//! - `nearest`: one job at a time, lowest latency from the job's origin
//!   first.
//! - `cheapest`: one job at a time, lowest list price first.
//!
//! Every policy sees the same `core::round::problem` and takes its
//! candidates from the engine's own feasibility (`place::index::Index`:
//! kind, family, latency circle, residency, and a gang's size), places a
//! gang whole in one pool, never beyond a pool's free units, and never
//! where the tenant would pay more than its bid (surplus > 0, as greedy).
//! With `verify`, every non-market round is checked by `place::check`
//! (written from the format, not from any solver) and a violation panics;
//! the market's solver asserts the same postconditions itself.

use suanwang_core::price::{self, PoolPrice, Won};
use suanwang_core::round::{self, Placement, RoundJob, RoundPool};
use suanwang_core::topology::Topology;
use suanwang_place::explain::{explain, render};
use suanwang_place::index::Index;
use suanwang_place::{greedy, Assignment, Problem, Solution};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    Market,
    Greedy,
    Nearest,
    Cheapest,
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Policy::Market,
        Policy::Greedy,
        Policy::Nearest,
        Policy::Cheapest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Market => "market",
            Policy::Greedy => "greedy",
            Policy::Nearest => "nearest",
            Policy::Cheapest => "cheapest",
        }
    }

    pub fn parse(text: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// A comma-separated list, in the order given, without repeats.
    pub fn parse_list(text: &str) -> Result<Vec<Policy>, String> {
        let mut out = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let policy = Policy::parse(name).ok_or_else(|| {
                format!(
                    "unknown policy {name:?}: the policies are market, greedy, nearest, cheapest"
                )
            })?;
            if !out.contains(&policy) {
                out.push(policy);
            }
        }
        if out.is_empty() {
            return Err("name at least one policy".into());
        }
        Ok(out)
    }
}

/// What a policy decided for one round.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Sorted by (job, pool), indexes into the round's jobs and pools.
    pub placements: Vec<Placement>,
    /// Every pool's prices this round (the market's clearing prices; list
    /// prices alone for the other policies, which clear no market).
    pub prices: Vec<PoolPrice>,
    /// Jobs left (partly) waiting, with the engine's explanation.
    pub waiting: Vec<(usize, String)>,
    /// Welfare per hour of what was placed (the engine's formula).
    pub welfare_per_h: f64,
}

/// One round under `policy`. Jobs must be in submit order (the greedy
/// policies take them so).
pub fn decide(
    policy: Policy,
    topology: &Topology,
    pools: &[RoundPool],
    jobs: &[RoundJob],
    verify: bool,
) -> (Problem, Decision) {
    if policy == Policy::Market {
        let (problem, plan) = round::plan(topology, pools, jobs);
        let decision = Decision {
            placements: plan.placements,
            prices: plan.prices,
            waiting: plan.waiting,
            welfare_per_h: plan.welfare,
        };
        return (problem, decision);
    }
    let problem = round::problem(topology, pools, jobs);
    let solution = solve(policy, &problem);
    if verify {
        let report = suanwang_place::check::check(&problem, &solution);
        assert!(
            report.feasible,
            "policy {} broke a hard constraint: {:?}",
            policy.as_str(),
            report.violations
        );
    }
    let decision = decision_of(topology, pools, jobs, &problem, &solution);
    (problem, decision)
}

/// The solution of a non-market policy on `problem`.
pub fn solve(policy: Policy, problem: &Problem) -> Solution {
    let index = Index::new(problem);
    let order: Vec<usize> = (0..problem.classes.len()).collect();
    match policy {
        Policy::Market => suanwang_place::solve::solve(problem, None),
        Policy::Greedy => greedy::solve_in_order(problem, &index, &order),
        Policy::Nearest => ranked(problem, &index, |class, pool| {
            problem.latency(class.origin, pool.region)
        }),
        Policy::Cheapest => ranked(problem, &index, |_, pool| pool.price_yuan_per_unit_hour),
    }
}

/// One class at a time in order; each task to the candidate with the
/// lowest `key` (ties: higher surplus, then lower pool index) that has
/// room, among those with a positive surplus. A gang goes whole into one
/// pool or waits.
fn ranked(
    problem: &Problem,
    index: &Index,
    key: impl Fn(&suanwang_place::Class, &suanwang_place::Pool) -> f64,
) -> Solution {
    let mut free: Vec<u64> = problem.pools.iter().map(|p| p.capacity).collect();
    let mut assignments = Vec::new();
    let mut candidates: Vec<(f64, f64, usize)> = Vec::new();
    for (c, class) in problem.classes.iter().enumerate() {
        candidates.clear();
        candidates.extend(index.feasible_pools(problem, c).filter_map(|p| {
            let pool = &problem.pools[p];
            let surplus = problem.surplus(class, pool);
            (surplus > 0.0).then(|| (key(class, pool), surplus, p))
        }));
        candidates.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.2.cmp(&b.2))
        });
        let block = class.block_units();
        let mut waiting = if class.gang { 1 } else { class.count };
        for &(_, _, p) in &candidates {
            if waiting == 0 {
                break;
            }
            let blocks = (free[p] / block).min(waiting);
            if blocks == 0 {
                continue;
            }
            free[p] -= blocks * block;
            waiting -= blocks;
            let count = if class.gang { class.count } else { blocks };
            assignments.push(Assignment {
                class: c,
                pool: p,
                count,
            });
        }
    }
    assignments.sort();
    Solution {
        assignments,
        prices_yuan_per_unit_hour: vec![0.0; problem.pools.len()],
    }
}

/// Placements and explanations of a solution, as `core::round` makes them
/// for the market (the explanation is the engine's `explain`, which works
/// on any solution).
fn decision_of(
    topology: &Topology,
    pools: &[RoundPool],
    jobs: &[RoundJob],
    problem: &Problem,
    solution: &Solution,
) -> Decision {
    // Pay-as-clear with no clearing: list prices, by `core::price`'s rules.
    let list: Vec<i64> = pools
        .iter()
        .map(|p| p.price_micro_yuan_per_unit_hour)
        .collect();
    let won: Vec<Won> = solution
        .assignments
        .iter()
        .map(|a| Won {
            pool: a.pool,
            bid_micro_yuan_per_unit_hour: jobs[a.class].def.bid_micro_yuan_per_unit_hour,
        })
        .collect();
    let prices = price::prices(&list, &solution.prices_yuan_per_unit_hour, &won);
    let mut placed = vec![0u64; problem.classes.len()];
    let mut used = vec![0u64; problem.pools.len()];
    let mut welfare = 0.0;
    let placements = solution
        .assignments
        .iter()
        .map(|a| {
            let class = &problem.classes[a.class];
            placed[a.class] += a.count;
            used[a.pool] += a.count * class.units;
            welfare += a.count as f64 * problem.surplus(class, &problem.pools[a.pool]);
            let def = &jobs[a.class].def;
            Placement {
                job: a.class,
                pool: a.pool,
                count: a.count,
                price: suanwang_core::round::attempt_price(
                    topology,
                    &pools[a.pool],
                    def,
                    prices[a.pool].market_micro_yuan_per_unit_hour(),
                ),
            }
        })
        .collect();
    // Postconditions, on in release as the engine's: capacity, counts.
    for (pool, units) in problem.pools.iter().zip(&used) {
        assert!(
            *units <= pool.capacity,
            "policy over-fills pool {}",
            pool.id
        );
    }
    let mut waiting = Vec::new();
    for (c, class) in problem.classes.iter().enumerate() {
        assert!(placed[c] <= class.count, "policy placed more than waits");
        if placed[c] < class.count {
            waiting.push((c, render(problem, solution, &explain(problem, solution, c))));
        }
    }
    Decision {
        placements,
        prices,
        waiting,
        welfare_per_h: welfare,
    }
}

/// The reason of an explanation, for grouping: the engine's verdict line
/// ("out of capacity", "bid below the market price", "no pool passes the
/// filters") and, for the last, the filters that removed pools.
pub fn reason(why: &str) -> String {
    let verdict = why
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("waiting: "))
        .map(|rest| rest.split(';').next().unwrap_or(rest).trim().to_owned());
    let Some(verdict) = verdict else {
        return "other".into();
    };
    if verdict.starts_with("no pool") {
        let filters: Vec<&str> = why
            .lines()
            .filter_map(|l| l.trim().strip_prefix("filter "))
            .filter_map(|l| l.split(':').next())
            .filter(|f| *f != "kind")
            .collect();
        if !filters.is_empty() {
            return format!("{verdict} ({})", filters.join(", "));
        }
    }
    verdict
}
