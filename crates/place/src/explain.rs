//! Why a class is not (fully) placed: "why is my job pending?".
//!
//! Computed from the problem and a solution alone, so it explains any
//! solution, ours or an outside solver's: every pool is either removed by
//! the first feasibility filter it fails (in `Filter::ALL` order), or it is a
//! candidate, and then the market prices say whether the bid was enough.

use std::fmt::Write as _;

use crate::model::{Filter, Problem, Solution};

/// Pool ids listed per filter in rendered text; the rest are counted.
pub const POOLS_LISTED_MAX: usize = 8;

#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub class: usize,
    pub placed: u64,
    pub count: u64,
    /// For each filter that removed pools, the pools it removed.
    pub removed: Vec<(Filter, Vec<usize>)>,
    /// Pools left after every filter.
    pub candidates: Vec<usize>,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every task is placed.
    Placed,
    /// The filters leave no pool at all.
    NoCandidate,
    /// At the market prices no candidate pool leaves a positive surplus: the
    /// bid would have to reach `bid_needed` (yuan per unit-hour) in `pool`.
    BidBelowMarket {
        pool: usize,
        bid_needed_yuan_per_unit_hour: f64,
    },
    /// Some candidate is worth its market price, but the units there are
    /// taken by tasks that bid as much or more, or the free units left are too
    /// few for one task (or the whole gang).
    OutOfCapacity {
        pool: usize,
        net_yuan_per_unit_hour: f64,
    },
}

pub fn explain(problem: &Problem, solution: &Solution, class_index: usize) -> Explanation {
    let class = &problem.classes[class_index];
    let placed: u64 = solution
        .assignments
        .iter()
        .filter(|assignment| assignment.class == class_index)
        .map(|assignment| assignment.count)
        .sum();
    let mut removed: Vec<(Filter, Vec<usize>)> = Vec::new();
    let mut candidates = Vec::new();
    for (pool_index, pool) in problem.pools.iter().enumerate() {
        match problem.infeasibility(class, pool) {
            None => candidates.push(pool_index),
            Some(filter) => match removed.iter_mut().find(|(f, _)| *f == filter) {
                Some((_, pools)) => pools.push(pool_index),
                None => removed.push((filter, vec![pool_index])),
            },
        }
    }
    removed.sort_by_key(|(filter, _)| *filter);

    let price = |pool: usize| {
        solution
            .prices_yuan_per_unit_hour
            .get(pool)
            .copied()
            .unwrap_or(0.0)
    };
    let units = class.units as f64;
    // Best candidate at market prices: highest net value per unit, ties to
    // the lower pool index.
    let best = candidates
        .iter()
        .map(|&pool| {
            let net = problem.surplus(class, &problem.pools[pool]) / units - price(pool);
            (net, pool)
        })
        .fold(None, |best: Option<(f64, usize)>, (net, pool)| match best {
            Some((best_net, _)) if best_net >= net => best,
            _ => Some((net, pool)),
        });
    let verdict = if placed >= class.count {
        Verdict::Placed
    } else {
        match best {
            None => Verdict::NoCandidate,
            Some((net, pool)) if net <= 0.0 => Verdict::BidBelowMarket {
                pool,
                bid_needed_yuan_per_unit_hour: class.bid_yuan_per_unit_hour - net,
            },
            Some((net, pool)) => Verdict::OutOfCapacity {
                pool,
                net_yuan_per_unit_hour: net,
            },
        }
    };
    Explanation {
        class: class_index,
        placed,
        count: class.count,
        removed,
        candidates,
        verdict,
    }
}

/// Explanations of every class that is not fully placed, in class order.
pub fn unplaced(problem: &Problem, solution: &Solution) -> Vec<Explanation> {
    let mut placed = vec![0u64; problem.classes.len()];
    for assignment in &solution.assignments {
        placed[assignment.class] += assignment.count;
    }
    (0..problem.classes.len())
        .filter(|&class| placed[class] < problem.classes[class].count)
        .map(|class| explain(problem, solution, class))
        .collect()
}

/// One paragraph a tenant can read.
pub fn render(problem: &Problem, solution: &Solution, explanation: &Explanation) -> String {
    let class = &problem.classes[explanation.class];
    let pool_id = |pool: usize| problem.pools[pool].id.as_str();
    let mut text = String::new();
    let what = if class.gang { "gang" } else { "class" };
    let _ = writeln!(
        text,
        "{what} {}: {} of {} tasks placed ({} {} x {} units, bid {} yuan/unit-hour)",
        class.id,
        explanation.placed,
        explanation.count,
        class.count,
        class.kind.as_str(),
        class.units,
        class.bid_yuan_per_unit_hour,
    );
    for assignment in solution
        .assignments
        .iter()
        .filter(|a| a.class == explanation.class)
    {
        let _ = writeln!(
            text,
            "  placed {} in {}",
            assignment.count,
            pool_id(assignment.pool)
        );
    }
    for (filter, pools) in &explanation.removed {
        // Pools of another kind are never candidates: count them only.
        let listed_max = if *filter == Filter::Kind {
            0
        } else {
            POOLS_LISTED_MAX
        };
        let listed: Vec<&str> = pools.iter().take(listed_max).map(|&p| pool_id(p)).collect();
        let _ = write!(
            text,
            "  filter {}: {} pools removed ({})",
            filter.as_str(),
            pools.len(),
            filter.describe(),
        );
        if !listed.is_empty() {
            let _ = write!(text, ": {}", listed.join(", "));
            let more = pools.len() - listed.len();
            if more > 0 {
                let _ = write!(text, " and {more} more");
            }
        }
        text.push('\n');
    }
    let _ = writeln!(text, "  candidates: {} pools", explanation.candidates.len());
    let reason = match &explanation.verdict {
        Verdict::Placed => "every task is placed".to_string(),
        Verdict::NoCandidate => {
            "waiting: no pool passes the filters; relax the constraints above".to_string()
        }
        Verdict::BidBelowMarket { pool, bid_needed_yuan_per_unit_hour } => {
            let pool_ref = &problem.pools[*pool];
            format!(
                "waiting: bid below the market price; the best candidate {} needs a bid of at least {:.4} yuan/unit-hour = list price {:.4} + congestion {:.4} + carbon {:.4} + data transfer {:.4}",
                pool_id(*pool),
                bid_needed_yuan_per_unit_hour,
                pool_ref.price_yuan_per_unit_hour,
                solution.prices_yuan_per_unit_hour.get(*pool).copied().unwrap_or(0.0),
                problem.carbon_yuan_per_unit_hour(pool_ref),
                problem.transfer_yuan_per_hour(class, pool_ref.region) / class.units as f64,
            )
        }
        Verdict::OutOfCapacity { pool, net_yuan_per_unit_hour } => format!(
            "waiting: out of capacity; the best candidate {} is worth {:.4} yuan/unit-hour above its market price, but its units are taken by equal or higher bids or too few are left for one {}",
            pool_id(*pool),
            net_yuan_per_unit_hour,
            if class.gang { "gang" } else { "task" },
        ),
    };
    let _ = writeln!(text, "  {reason}");
    text
}
