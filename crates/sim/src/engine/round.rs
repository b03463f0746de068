//! One scheduling round on the virtual clock, in the server's order
//! (`server::scheduler`): lapse leases, fail what can no longer meet its
//! deadline, offer every waiting job (a gang only whole:
//! `machine::round::offered`, via `Model::offered`) and the free units of
//! healthy sites' pools to the policy, and write its placements through
//! `Model::round` (`machine::round::plan`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use suanwang_core::lifecycle::TaskState;
use suanwang_core::machine::round::Placed;
use suanwang_core::price::AttemptPrice;
use suanwang_core::round::RoundJob;
use suanwang_place::index::Index;
use suanwang_place::{Kind, Problem};

use super::measure::kind_index;
use super::outcome::Cause;
use super::{pool_of, Live, Twin};
use crate::policy;

/// The reason given to a gang held back until its members finish (the
/// server's `scheduler::prepare` says the same in its words).
const GANG_HELD: &str = "gang waits for its running members to finish";

/// Adds one waiting job to a round's tally by reason.
fn add_waiting(tally: &mut Vec<(String, u64, u64)>, reason: &str, tasks: u64) {
    match tally.iter_mut().find(|(r, _, _)| r == reason) {
        Some(entry) => {
            entry.1 += 1;
            entry.2 += tasks;
        }
        None => tally.push((reason.to_owned(), 1, tasks)),
    }
}

impl Twin<'_> {
    pub(crate) fn round(&mut self) {
        self.m.rounds += 1;
        self.lease_check();
        self.deadlines();
        let sample = self.now >= self.next_sample_ms;
        if sample {
            self.sample_utilisation();
            self.next_sample_ms += self.sample_every_ms;
        }
        let round_ms = self.setup.round_ms;
        if !self.dirty && self.last_placed == 0 {
            // The same input as the last round, which placed nothing: the
            // deterministic engine would place nothing again. Its waiting
            // jobs still wait, for the same reasons.
            for (&j, reason) in &self.last_reason {
                let pending = self.model.view.jobs[&self.jobs[j as usize].id]
                    .counts
                    .get(TaskState::Pending);
                self.m.waiting(reason, pending, round_ms);
            }
            return;
        }
        self.dirty = false;
        self.last_placed = 0;
        self.last_waiting.clear();
        let mut jobs: Vec<RoundJob> = Vec::new();
        let mut round_of: Vec<u32> = Vec::new();
        let mut done: Vec<u32> = Vec::new();
        for &j in &self.waiting {
            let id = &self.jobs[j as usize].id;
            let offered = self.model.offered(id);
            let pending = self.model.view.jobs[id].counts.get(TaskState::Pending);
            if pending == 0 {
                done.push(j);
                continue;
            }
            if offered == 0 {
                self.last_reason.insert(j, GANG_HELD.to_owned());
                self.m.waiting(GANG_HELD, pending, round_ms);
                add_waiting(&mut self.last_waiting, GANG_HELD, pending);
                continue;
            }
            let arrival = &self.setup.arrivals[j as usize];
            jobs.push(RoundJob {
                id: id.clone(),
                tenant: arrival.tenant.to_string(),
                def: Arc::clone(&arrival.def),
                pending: offered,
            });
            round_of.push(j);
        }
        for j in done {
            self.waiting.remove(&j);
            self.last_reason.remove(&j);
        }
        if jobs.is_empty() {
            return;
        }
        self.m.rounds_solved += 1;
        self.m.events += 1;
        // Pools of healthy sites, with what is free now.
        let mut template = std::mem::take(&mut self.round_pools);
        for (pool, free) in template.iter_mut().zip(&self.used) {
            let capacity = self.setup.pools[pool_of(&pool.id) as usize].capacity;
            pool.free_units = capacity - free;
        }
        let all_healthy = self
            .setup
            .sites
            .iter()
            .all(|s| self.model.view.sites[&s.id].healthy);
        let (problem, decision, placements, prices) = {
            let healthy_pools;
            let pools = if all_healthy {
                &template[..]
            } else {
                healthy_pools = template
                    .iter()
                    .filter(|p| self.model.view.sites[&p.site].healthy)
                    .cloned()
                    .collect::<Vec<_>>();
                &healthy_pools[..]
            };
            let (problem, decision) = policy::decide(
                self.policy,
                &self.setup.topology,
                pools,
                &jobs,
                self.options.verify,
            );
            let placements: Vec<Placed> = decision
                .placements
                .iter()
                .map(|p| {
                    let pool = &pools[p.pool];
                    Placed {
                        job: jobs[p.job].id.clone(),
                        pool: pool.id.clone(),
                        site: pool.site.clone(),
                        count: p.count,
                        price: p.price,
                    }
                })
                .collect();
            let prices: BTreeMap<(usize, u32), AttemptPrice> = decision
                .placements
                .iter()
                .map(|p| ((p.job, pool_of(&pools[p.pool].id)), p.price))
                .collect();
            (problem, decision, placements, prices)
        };
        self.round_pools = template;
        self.m.welfare_per_h_sum += decision.welfare_per_h;
        if sample {
            self.sample_round(&problem, &decision);
        }
        for (i, why) in &decision.waiting {
            let reason = policy::reason(why);
            let placed: u64 = decision
                .placements
                .iter()
                .filter(|p| p.job == *i)
                .map(|p| p.count)
                .sum();
            let left = jobs[*i].pending - placed;
            self.m.waiting(&reason, left, round_ms);
            add_waiting(&mut self.last_waiting, &reason, left);
            self.last_reason.insert(round_of[*i], reason);
        }
        if placements.is_empty() {
            self.model.events.clear();
            return;
        }
        self.model.round(&placements, &[], self.now);
        self.model.events.clear();
        self.m.events += 1;
        // The attempts the round began: each placed job's rows now placed.
        let placed_jobs: BTreeSet<usize> = decision.placements.iter().map(|p| p.job).collect();
        let mut started = Vec::new();
        for i in placed_jobs {
            let j = round_of[i];
            let id = jobs[i].id.clone();
            let arrival = &self.setup.arrivals[j as usize];
            let rows: Vec<(u64, u32, u32)> = self
                .model
                .view
                .tasks
                .range((id.clone(), 0)..=(id.clone(), u64::MAX))
                .filter(|((_, index), task)| {
                    task.state == TaskState::Placed && !self.live.contains_key(&(j, *index))
                })
                .map(|((_, index), task)| {
                    (
                        *index,
                        task.attempt,
                        pool_of(task.pool.as_deref().expect("a placed task has a pool")),
                    )
                })
                .collect();
            for (index, attempt, pool) in rows {
                let index = &index;
                let p = &self.setup.pools[pool as usize];
                let price = prices[&(i, pool)];
                self.used[pool as usize] += arrival.def.units;
                assert!(
                    self.used[pool as usize] <= p.capacity,
                    "pool {} over-filled",
                    p.id
                );
                self.live.insert(
                    (j, *index),
                    Live {
                        attempt,
                        pool,
                        price_micro_yuan_per_unit_hour: price.price_micro_yuan_per_unit_hour,
                        start_ms: None,
                    },
                );
                self.move_data(
                    arrival.def.data_region,
                    p.region,
                    arrival.def.data_gb,
                    price.transfer_micro_yuan_per_gb,
                );
                started.push((j, *index, attempt));
                self.last_placed += 1;
            }
            let job = &self.model.view.jobs[&id];
            let run = &mut self.jobs[j as usize];
            if !run.fully_placed && job.materialized == job.tasks {
                run.fully_placed = true;
                self.m.wait(arrival.def.kind, self.now - arrival.at_ms);
            }
            if job.counts.get(TaskState::Pending) == 0 {
                self.last_reason.remove(&j);
            }
        }
        self.m.tasks_placed += self.last_placed;
        self.start(&started);
    }

    /// The data of one attempt moves from its data region to the pool's.
    fn move_data(&mut self, from: usize, to: usize, gb: f64, micro_yuan_per_gb: i64) {
        if from == to || gb <= 0.0 {
            return;
        }
        *self.m.flows_gb.entry((from, to)).or_default() += gb;
        self.m.transfer_micro_yuan += (gb * micro_yuan_per_gb as f64).round() as i128;
    }

    /// Waiting jobs past the point where their deadline can be met fail
    /// their waiting tasks (`machine::ending::deadline_missed`), as the
    /// server's round does before it solves.
    fn deadlines(&mut self) {
        let missed: Vec<(u32, i64)> = self
            .waiting
            .iter()
            .filter_map(|&j| {
                let def = &self.setup.arrivals[j as usize].def;
                let deadline = def.deadline_ms?;
                (!def.deadline_at(self.now).may_start()).then_some((j, deadline))
            })
            .collect();
        for (j, deadline_ms) in missed {
            let id = self.jobs[j as usize].id.clone();
            let changes =
                suanwang_core::machine::ending::deadline_missed(&self.model.view, &id, deadline_ms);
            self.absorb(&changes, Cause::Cancel, &BTreeSet::new());
            self.model.apply(&changes, self.now);
            self.retire_finished(&changes);
            self.dirty = true;
            self.m.events += 1;
        }
    }

    fn sample_utilisation(&mut self) {
        self.m.sample_ms.push(self.now);
        let mut used = vec![0u64; self.m.series.len()];
        for (p, units) in self.setup.pools.iter().zip(&self.used) {
            let at = self
                .m
                .series
                .binary_search_by_key(&(p.region, p.kind), |(r, k, _)| (*r, *k))
                .expect("every pool's series exists");
            used[at] += units;
        }
        for (series, units) in self.m.used.iter_mut().zip(used) {
            series.push(units);
        }
    }

    /// On a sampled round: GPU fragmentation, and the market's prices.
    fn sample_round(&mut self, problem: &Problem, decision: &policy::Decision) {
        let mut free: Vec<u64> = problem.pools.iter().map(|p| p.capacity).collect();
        let mut left: Vec<u64> = problem.classes.iter().map(|c| c.count).collect();
        for p in &decision.placements {
            free[p.pool] -= p.count * problem.classes[p.job].units;
            left[p.job] -= p.count;
        }
        // A free GPU unit is usable if some waiting GPU task is feasible in
        // its pool (the engine's own buckets) and fits what is free there.
        let index = Index::new(problem);
        let mut min_block: Vec<Option<u64>> = vec![None; index.sets.len()];
        for (c, class) in problem.classes.iter().enumerate() {
            if class.kind == Kind::Gpu && left[c] > 0 {
                let block = if class.gang {
                    class.count * class.units
                } else {
                    class.units
                };
                let slot = &mut min_block[index.class_set[c]];
                *slot = Some(slot.map_or(block, |b: u64| b.min(block)));
            }
        }
        let mut usable = vec![false; problem.pools.len()];
        for (set, block) in min_block.iter().enumerate() {
            let Some(block) = block else { continue };
            for &bucket in &index.sets[set] {
                for &p in &index.buckets[bucket].pools {
                    usable[p] |= free[p] >= *block;
                }
            }
        }
        let gpu = |p: &&suanwang_place::Pool| p.kind == Kind::Gpu;
        let free_gpu: u64 = problem
            .pools
            .iter()
            .zip(&free)
            .filter(|(p, _)| gpu(p))
            .map(|(_, f)| f)
            .sum();
        let waiting_gpu = min_block.iter().any(Option::is_some);
        if free_gpu > 0 && waiting_gpu {
            let stranded: u64 = problem
                .pools
                .iter()
                .enumerate()
                .filter(|(p, pool)| gpu(pool) && !usable[*p])
                .map(|(p, _)| free[p])
                .sum();
            self.m
                .fragmentation
                .push((self.now, stranded as f64 / free_gpu as f64));
        }
        // The round's price index: mean market price (list + clearing)
        // over its pools, per kind.
        let mut sums = [(0i128, 0i128); 3];
        for (pool, price) in problem.pools.iter().zip(&decision.prices) {
            let k = kind_index(pool.kind);
            sums[k].0 += i128::from(price.market_micro_yuan_per_unit_hour());
            sums[k].1 += 1;
        }
        for (k, (sum, pools)) in sums.iter().enumerate() {
            if *pools > 0 {
                self.m.prices[k].push((self.now, *sum as f64 / *pools as f64 / 1e6));
            }
        }
    }
}
