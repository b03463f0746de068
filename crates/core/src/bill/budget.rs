//! The budget of a round: a tenant's placements never hold more than its
//! wallet can reserve. The engine maximises welfare without knowing
//! wallets; this keeps, per tenant, the placements its wallet covers, in
//! the engine's order (jobs in round order, each job's pools in order), a
//! gang whole or not at all, and says of every job it cut back what it
//! would need and what the wallet has.

use std::collections::BTreeMap;

use crate::price;
use crate::round::{Placement, Plan, RoundJob};
use crate::spec::JobKind;

/// What one task of `job` would hold at `placement`'s price.
pub fn task_hold_micro(job: &RoundJob, placement: &Placement) -> i64 {
    price::estimate_micro(
        job.def.units,
        price::hours_ms(job.def.hours),
        &placement.price,
    )
}

/// Cuts `plan`'s placements to what each tenant's wallet can hold
/// (`spare[tenant]`: available above its floor; a tenant not in it has
/// nothing). Returns the explanation of each job cut back, by job index.
/// `plan.tasks_placed` follows.
pub fn trim(
    plan: &mut Plan,
    jobs: &[RoundJob],
    spare: &BTreeMap<String, i64>,
) -> Vec<(usize, String)> {
    let mut left: BTreeMap<&str, i64> = BTreeMap::new();
    let mut wanted: BTreeMap<usize, (u64, i64)> = BTreeMap::new();
    let mut kept = Vec::with_capacity(plan.placements.len());
    let mut index = 0;
    while index < plan.placements.len() {
        // One job's placements together: a gang is all or nothing.
        let job_index = plan.placements[index].job;
        let end = plan.placements[index..]
            .iter()
            .position(|p| p.job != job_index)
            .map_or(plan.placements.len(), |offset| index + offset);
        let job = &jobs[job_index];
        let budget = left
            .entry(job.tenant.as_str())
            .or_insert_with(|| spare.get(&job.tenant).copied().unwrap_or(0).max(0));
        let group = &plan.placements[index..end];
        if job.def.kind == JobKind::Gang {
            let need: i64 = group
                .iter()
                .map(|p| task_hold_micro(job, p) * p.count as i64)
                .sum();
            if need <= *budget {
                *budget -= need;
                kept.extend_from_slice(group);
            } else {
                let tasks = group.iter().map(|p| p.count).sum();
                wanted.insert(job_index, (tasks, need));
            }
        } else {
            for placement in group {
                let each = task_hold_micro(job, placement);
                let fits = if each == 0 {
                    placement.count
                } else {
                    placement
                        .count
                        .min(u64::try_from(*budget / each).unwrap_or(0))
                };
                if fits > 0 {
                    *budget -= each * fits as i64;
                    kept.push(Placement {
                        count: fits,
                        ..*placement
                    });
                }
                if fits < placement.count {
                    let entry = wanted.entry(job_index).or_insert((0, 0));
                    entry.0 += placement.count - fits;
                    entry.1 += each * (placement.count - fits) as i64;
                }
            }
        }
        index = end;
    }
    plan.placements = kept;
    plan.tasks_placed = plan.placements.iter().map(|p| p.count).sum();
    // Postcondition: no tenant holds more than it has.
    let mut held: BTreeMap<&str, i64> = BTreeMap::new();
    for placement in &plan.placements {
        let job = &jobs[placement.job];
        *held.entry(job.tenant.as_str()).or_default() +=
            task_hold_micro(job, placement) * placement.count as i64;
    }
    for (tenant, held) in held {
        assert!(
            held <= spare.get(tenant).copied().unwrap_or(0).max(0),
            "a round holds no more than a wallet has"
        );
    }
    wanted
        .into_iter()
        .map(|(job_index, (tasks, need))| {
            let tenant = &jobs[job_index].tenant;
            let has = spare.get(tenant).copied().unwrap_or(0).max(0);
            (
                job_index,
                format!(
                    "wallet: {tasks} more tasks would hold {} yuan at this round's prices; the wallet has {} yuan to hold (top up, or ask the operator for credit)",
                    crate::money::yuan_text(need),
                    crate::money::yuan_text(has)
                ),
            )
        })
        .collect()
}
