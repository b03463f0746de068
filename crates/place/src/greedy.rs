//! The baseline: what a scheduler that decides one job at a time does.
//!
//! Classes in file order; each task goes to the feasible pool with the highest
//! surplus that still has room (a gang: the whole gang to one pool), as long
//! as that surplus is positive. It has no prices, so it reports zeros, and the
//! bound of zero prices is all it can certify.

use crate::index::Index;
use crate::model::{Assignment, Problem, Solution};

pub fn solve(problem: &Problem) -> Solution {
    let index = Index::new(problem);
    let order: Vec<usize> = (0..problem.classes.len()).collect();
    solve_in_order(problem, &index, &order)
}

/// The same policy with the classes taken in `order` (each class at most
/// once); classes not in `order` stay unplaced.
pub fn solve_in_order(problem: &Problem, index: &Index, order: &[usize]) -> Solution {
    let mut free_units: Vec<u64> = problem.pools.iter().map(|pool| pool.capacity).collect();
    let mut assignments = Vec::new();
    let mut candidates: Vec<(f64, usize)> = Vec::new();
    for &class_index in order {
        let class = &problem.classes[class_index];
        candidates.clear();
        candidates.extend(
            index
                .feasible_pools(problem, class_index)
                .map(|pool| (problem.surplus(class, &problem.pools[pool]), pool))
                .filter(|(surplus, _)| *surplus > 0.0),
        );
        // Highest surplus first; ties to the lower pool index.
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let block_units = class.block_units();
        let mut waiting = if class.gang { 1 } else { class.count };
        let first = assignments.len();
        for &(_, pool) in &candidates {
            if waiting == 0 {
                break;
            }
            let blocks = (free_units[pool] / block_units).min(waiting);
            if blocks == 0 {
                continue;
            }
            free_units[pool] -= blocks * block_units;
            waiting -= blocks;
            let count = if class.gang { class.count } else { blocks };
            assignments.push(Assignment {
                class: class_index,
                pool,
                count,
            });
        }
        assignments[first..].sort();
    }
    assignments.sort();
    Solution {
        assignments,
        prices_yuan_per_unit_hour: vec![0.0; problem.pools.len()],
    }
}
