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

/// What each job of `plan` holds: (job index, tasks placed, micro-yuan),
/// in job order; a job placed only on free pools holds 0.
pub fn holds(plan: &Plan, jobs: &[RoundJob]) -> Vec<(usize, u64, i64)> {
    let mut per_job: BTreeMap<usize, (u64, i64)> = BTreeMap::new();
    for placement in &plan.placements {
        let each = task_hold_micro(&jobs[placement.job], placement);
        let all = each
            .checked_mul(i64::try_from(placement.count).expect("bounded counts"))
            .expect("bounded amounts");
        let entry = per_job.entry(placement.job).or_default();
        entry.0 += placement.count;
        entry.1 += all;
    }
    per_job
        .into_iter()
        .map(|(job, (tasks, amount))| (job, tasks, amount))
        .collect()
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
            let tenant = jobs[job_index].tenant.as_str();
            let had = spare.get(tenant).copied().unwrap_or(0).max(0);
            let left = left.get(tenant).copied().unwrap_or(had);
            (
                job_index,
                format!(
                    "wallet: {tasks} more tasks would hold {} yuan at this round's prices; the wallet had {} yuan to hold, {} yuan after this round's holds (top up, or ask the operator for credit)",
                    crate::money::yuan_text(need),
                    crate::money::yuan_text(had),
                    crate::money::yuan_text(left)
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::AttemptPrice;
    use crate::round::tests::job;
    use crate::topology::Topology;

    const YUAN: i64 = 1_000_000;

    /// `count` tasks of job `job` on pool `pool` at `yuan` per unit-hour.
    fn at(job: usize, pool: usize, count: u64, yuan: i64) -> Placement {
        Placement {
            job,
            pool,
            count,
            price: AttemptPrice {
                price_micro_yuan_per_unit_hour: yuan * YUAN,
                transfer_micro_yuan_per_gb: 0,
                bid_micro_yuan_per_unit_hour: 10 * YUAN,
                data_mb: 0,
            },
        }
    }

    fn plan(placements: Vec<Placement>) -> Plan {
        Plan {
            tasks_placed: placements.iter().map(|p| p.count).sum(),
            placements,
            prices: vec![],
            waiting: vec![],
            welfare: 0.0,
        }
    }

    /// Each case: the jobs (tasks, gang, tenant), the placements, the
    /// wallets; what is kept, and which jobs are explained. Every task is
    /// 2 units for 1 h, so at `yuan` it holds `2 × yuan`.
    #[test]
    fn a_round_holds_no_more_than_each_wallet_has() {
        struct Case {
            name: &'static str,
            jobs: Vec<(u64, bool, &'static str)>,
            placements: Vec<Placement>,
            wallets: Vec<(&'static str, i64)>,
            kept: Vec<(usize, usize, u64)>,
            cut: Vec<usize>,
        }
        let cases = [
            Case {
                name: "a wallet of 20 yuan covers 10 tasks of 2 yuan",
                jobs: vec![(30, false, "t")],
                placements: vec![at(0, 0, 30, 1)],
                wallets: vec![("t", 20 * YUAN)],
                kept: vec![(0, 0, 10)],
                cut: vec![0],
            },
            Case {
                name: "in the engine's order, across pools and jobs",
                jobs: vec![(4, false, "t"), (4, false, "t")],
                placements: vec![at(0, 0, 2, 1), at(0, 1, 2, 3), at(1, 0, 4, 1)],
                wallets: vec![("t", 12 * YUAN)],
                // 2 × 2 = 4 yuan, then 1 of 6-yuan tasks (6), then 1 of 2.
                kept: vec![(0, 0, 2), (0, 1, 1), (1, 0, 1)],
                cut: vec![0, 1],
            },
            Case {
                name: "a gang is held whole or not at all",
                jobs: vec![(3, true, "t"), (1, false, "t")],
                placements: vec![at(0, 0, 3, 1), at(1, 0, 1, 1)],
                wallets: vec![("t", 5 * YUAN)],
                kept: vec![(1, 0, 1)],
                cut: vec![0],
            },
            Case {
                name: "each tenant its own wallet; none means nothing priced",
                jobs: vec![(2, false, "t"), (2, false, "u"), (2, false, "v")],
                placements: vec![at(0, 0, 2, 1), at(1, 0, 2, 1), at(2, 0, 2, 0)],
                wallets: vec![("t", 4 * YUAN)],
                kept: vec![(0, 0, 2), (2, 0, 2)],
                cut: vec![1],
            },
        ];
        let topology = Topology::national();
        for case in cases {
            let jobs: Vec<RoundJob> = case
                .jobs
                .iter()
                .enumerate()
                .map(|(i, &(tasks, gang, tenant))| RoundJob {
                    tenant: tenant.into(),
                    ..job(&topology, &format!("j{i}"), tasks, 10.0, gang)
                })
                .collect();
            let wallets: BTreeMap<String, i64> = case
                .wallets
                .iter()
                .map(|&(t, micro)| (t.to_owned(), micro))
                .collect();
            let mut plan = plan(case.placements);
            let cut = trim(&mut plan, &jobs, &wallets);
            let kept: Vec<(usize, usize, u64)> = plan
                .placements
                .iter()
                .map(|p| (p.job, p.pool, p.count))
                .collect();
            assert_eq!(kept, case.kept, "{}", case.name);
            assert_eq!(plan.tasks_placed, kept.iter().map(|k| k.2).sum::<u64>());
            let explained: Vec<usize> = cut.iter().map(|(j, _)| *j).collect();
            assert_eq!(explained, case.cut, "{}", case.name);
            for (_, why) in &cut {
                assert!(why.starts_with("wallet: "), "{why}");
            }
            // What the kept placements hold, per job, sums per tenant to at
            // most the wallet.
            let held: i64 = holds(&plan, &jobs).iter().map(|h| h.2).sum();
            let had: i64 = case.wallets.iter().map(|w| w.1).sum();
            assert!(held <= had, "{}", case.name);
        }
    }

    #[test]
    fn the_explanation_gives_the_amounts() {
        let topology = Topology::national();
        let jobs = vec![job(&topology, "j", 30, 10.0, false)];
        let mut plan = plan(vec![at(0, 0, 30, 1)]);
        let wallets = [("t".to_owned(), 21 * YUAN)].into();
        let cut = trim(&mut plan, &jobs, &wallets);
        assert_eq!(
            cut,
            [(
                0,
                "wallet: 20 more tasks would hold 40 yuan at this round's prices; the wallet had 21 yuan to hold, 1 yuan after this round's holds (top up, or ask the operator for credit)".to_owned()
            )]
        );
        assert_eq!(holds(&plan, &jobs), [(0, 10, 20 * YUAN)]);
    }
}
