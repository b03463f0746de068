//! Independent checks of a solution: feasibility, welfare, and the bound its
//! prices certify. Written from FORMAT.md, not from the solver, so that a
//! solver bug cannot hide behind a checker that shares it.

use crate::index::Index;
use crate::model::{Problem, Solution};

/// At most this many violations are listed; the total is always counted.
pub const VIOLATIONS_LISTED_MAX: usize = 100;

#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub feasible: bool,
    pub violation_count: usize,
    pub violations: Vec<String>,
    pub welfare: f64,
    pub bound: f64,
    pub placed_tasks: u64,
    pub total_tasks: u64,
}

impl Report {
    /// `welfare / bound`, 1 when both are zero (nothing to gain, nothing lost).
    pub fn ratio(&self) -> f64 {
        ratio(self.welfare, self.bound)
    }
}

pub fn ratio(welfare: f64, bound: f64) -> f64 {
    if bound <= 0.0 {
        if welfare >= 0.0 {
            1.0
        } else {
            0.0
        }
    } else {
        welfare / bound
    }
}

pub fn check(problem: &Problem, solution: &Solution) -> Report {
    let index = Index::new(problem);
    let mut violations = Violations::default();
    if solution.prices_yuan_per_unit_hour.len() != problem.pools.len() {
        violations.push(format!(
            "prices: {} entries for {} pools",
            solution.prices_yuan_per_unit_hour.len(),
            problem.pools.len()
        ));
    }
    for (pool, price) in problem
        .pools
        .iter()
        .zip(&solution.prices_yuan_per_unit_hour)
    {
        if !(price.is_finite() && *price >= 0.0) {
            violations.push(format!(
                "prices.{}: {price} is not a finite number >= 0",
                pool.id
            ));
        }
    }

    let mut placed_per_class = vec![0u64; problem.classes.len()];
    let mut pools_per_class = vec![0u32; problem.classes.len()];
    let mut used_units = vec![0u128; problem.pools.len()];
    let mut welfare = 0.0;
    for assignment in &solution.assignments {
        let (Some(class), Some(pool)) = (
            problem.classes.get(assignment.class),
            problem.pools.get(assignment.pool),
        ) else {
            violations.push(format!("assignment {assignment:?} names no class or pool"));
            continue;
        };
        if assignment.count == 0 {
            violations.push(format!("class {} in pool {}: count 0", class.id, pool.id));
        }
        if let Some(filter) = problem.infeasibility(class, pool) {
            violations.push(format!(
                "class {} may not use pool {}: {}",
                class.id,
                pool.id,
                filter.describe()
            ));
        }
        placed_per_class[assignment.class] += assignment.count;
        pools_per_class[assignment.class] += 1;
        used_units[assignment.pool] += u128::from(assignment.count) * u128::from(class.units);
        welfare += assignment.count as f64 * problem.surplus(class, pool);
    }
    for (class_index, class) in problem.classes.iter().enumerate() {
        let placed = placed_per_class[class_index];
        if placed > class.count {
            violations.push(format!(
                "class {}: {placed} tasks placed, only {} waiting",
                class.id, class.count
            ));
        }
        if class.gang && placed > 0 && (placed != class.count || pools_per_class[class_index] != 1)
        {
            violations.push(format!(
                "gang {}: {placed} of {} tasks in {} pools; a gang is placed whole in one pool",
                class.id, class.count, pools_per_class[class_index]
            ));
        }
    }
    for (pool_index, pool) in problem.pools.iter().enumerate() {
        if used_units[pool_index] > u128::from(pool.capacity) {
            violations.push(format!(
                "pool {}: {} units used, capacity {}",
                pool.id, used_units[pool_index], pool.capacity
            ));
        }
    }

    let bound = bound(problem, &index, &solution.prices_yuan_per_unit_hour);
    Report {
        feasible: violations.count == 0,
        violation_count: violations.count,
        violations: violations.listed,
        welfare,
        bound,
        placed_tasks: placed_per_class.iter().sum(),
        total_tasks: problem.task_count(),
    }
}

#[derive(Default)]
struct Violations {
    count: usize,
    listed: Vec<String>,
}

impl Violations {
    fn push(&mut self, message: String) {
        self.count += 1;
        if self.listed.len() < VIOLATIONS_LISTED_MAX {
            self.listed.push(message);
        }
    }
}

/// `bound(lam)` of FORMAT.md: no placement has more welfare. Prices that are
/// missing, negative or not finite count as 0, as the format says.
pub fn bound(problem: &Problem, index: &Index, prices: &[f64]) -> f64 {
    let price = |pool: usize| -> f64 {
        match prices.get(pool) {
            Some(&lam) if lam.is_finite() && lam > 0.0 => lam,
            _ => 0.0,
        }
    };
    // Per bucket, pools by unit cost plus price: the first is the best one
    // for every non-gang class, since the transfer cost is per region, and
    // the first big enough is the best one for a gang.
    let by_cost: Vec<Vec<usize>> = index
        .buckets
        .iter()
        .map(|bucket| {
            let mut pools = bucket.pools.clone();
            pools.sort_by(|&a, &b| {
                (index.unit_cost[a] + price(a))
                    .total_cmp(&(index.unit_cost[b] + price(b)))
                    .then(a.cmp(&b))
            });
            pools
        })
        .collect();

    let mut dual = 0.0;
    for (pool_index, pool) in problem.pools.iter().enumerate() {
        dual += pool.capacity as f64 * price(pool_index);
    }
    for (class_index, class) in problem.classes.iter().enumerate() {
        let units = class.units as f64;
        let mut best = 0.0f64;
        let mut consider = |pool_index: usize| {
            let gain =
                problem.surplus(class, &problem.pools[pool_index]) - units * price(pool_index);
            best = best.max(gain);
        };
        // Only a gang's feasibility depends on a pool's size (FORMAT.md): a
        // non-gang class counts every pool of the bucket, even one too small
        // for a single task, as `bound_by_pairs` does.
        let units_needed = if class.gang { class.block_units() } else { 0 };
        for &bucket in index.class_buckets(class_index) {
            let fitting = by_cost[bucket]
                .iter()
                .find(|&&pool| problem.pools[pool].capacity >= units_needed);
            if let Some(&pool_index) = fitting {
                consider(pool_index);
            }
        }
        dual += class.count as f64 * best;
    }
    dual
}

/// The same bound by enumerating every (class, pool) pair: the reference the
/// indexed version is tested against. Prices count as in [`bound`].
pub fn bound_by_pairs(problem: &Problem, prices: &[f64]) -> f64 {
    let price = |pool: usize| {
        prices
            .get(pool)
            .copied()
            .filter(|lam| lam.is_finite() && *lam > 0.0)
            .unwrap_or(0.0)
    };
    let mut dual: f64 = problem
        .pools
        .iter()
        .enumerate()
        .map(|(index, pool)| pool.capacity as f64 * price(index))
        .sum();
    for class in &problem.classes {
        let mut best = 0.0f64;
        for (pool_index, pool) in problem.pools.iter().enumerate() {
            if problem.feasible(class, pool) {
                best =
                    best.max(problem.surplus(class, pool) - class.units as f64 * price(pool_index));
            }
        }
        dual += class.count as f64 * best;
    }
    dual
}
