//! The sites' agents on the virtual clock: they start what a round gave
//! them, report each attempt when its run time is up (with its usage
//! record), heartbeat, and fail as the scenario says. What a report or a
//! lapse does to a task is the machine's decision (`Model::report`,
//! `machine::lease`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use suanwang_core::lifecycle::ReportedState;
use suanwang_core::machine::report::{Status, Usage};
use suanwang_core::machine::{lease, Outcome};

use super::outcome::Cause;
use super::{SiteState, Transition, Twin};
use crate::setup::Fault;
use crate::workload::START_MS;

/// A finished attempt an agent reports: (finished at, job, task, attempt).
type Finished = (i64, u32, u64, u32);

impl Twin<'_> {
    /// Starts the attempts of `placed` (job, task, attempt) at their sites:
    /// one `running` report per site, and each attempt's end scheduled
    /// after its run time. Attempts on a silent site wait for it.
    pub(crate) fn start(&mut self, placed: &[(u32, u64, u32)]) {
        let mut by_site: BTreeMap<usize, Vec<(u32, u64, u32)>> = BTreeMap::new();
        for &(j, task, attempt) in placed {
            let live = self.live[&(j, task)];
            let site = self.setup.pools[live.pool as usize].site;
            if self.sites[site] != SiteState::Up {
                self.unstarted[site].push((j, task, attempt));
                continue;
            }
            by_site.entry(site).or_default().push((j, task, attempt));
        }
        for (site, attempts) in by_site {
            let statuses: Vec<Status> = attempts
                .iter()
                .map(|&(j, task, attempt)| {
                    status(
                        &self.jobs[j as usize].id,
                        task,
                        attempt,
                        ReportedState::Running,
                    )
                })
                .collect();
            let decided =
                self.model
                    .report(&self.setup.sites[site].id.clone(), &statuses, &[], self.now);
            self.m.events += 1;
            for ((j, task, attempt), outcome) in attempts.iter().zip(&decided.statuses) {
                assert_eq!(
                    *outcome,
                    Outcome::Accepted,
                    "an agent's start of a current attempt"
                );
                let live = self.live.get_mut(&(*j, *task)).expect("placed");
                live.start_ms = Some(self.now);
                let duration = self.setup.arrivals[*j as usize].duration_ms;
                self.completions
                    .push(Reverse((self.now + duration, *j, *task, *attempt)));
            }
        }
    }

    /// Reports every attempt whose run time ends now, grouped by site.
    pub(crate) fn complete_due(&mut self) {
        let mut due: BTreeMap<usize, Vec<Finished>> = BTreeMap::new();
        while let Some(Reverse(next)) = self.completions.peek().copied() {
            if next.0 != self.now {
                break;
            }
            self.completions.pop();
            let (_, j, task, attempt) = next;
            // An attempt the agent was told to stop (requeued with its
            // gang, cancelled, lost) is not reported.
            let Some(live) = self.live.get(&(j, task)).filter(|l| l.attempt == attempt) else {
                continue;
            };
            let site = self.setup.pools[live.pool as usize].site;
            match &mut self.sites[site] {
                SiteState::Up => due.entry(site).or_default().push(next),
                SiteState::Partition { outbox } => outbox.push(next),
                // The agent died with its tasks.
                SiteState::Down { .. } => {}
            }
        }
        for (site, finished) in due {
            self.report(site, &finished);
        }
    }

    /// One report of final statuses and usage records from `site`.
    fn report(&mut self, site: usize, finished: &[Finished]) {
        let mut statuses = Vec::with_capacity(finished.len());
        let mut usage = Vec::with_capacity(finished.len());
        let mut walls = Vec::with_capacity(finished.len());
        for &(at, j, task, attempt) in finished {
            let id = &self.jobs[j as usize].id;
            let arrival = &self.setup.arrivals[j as usize];
            let fails = draw(self.setup.seed, j, task, attempt) < arrival.fail_share;
            let state = if fails {
                ReportedState::Failed
            } else {
                ReportedState::Succeeded
            };
            let mut s = status(id, task, attempt, state);
            s.exit_code = Some(i32::from(fails));
            statuses.push(s);
            // Which pool the agent ran it on: the assignment it was given,
            // which a late report still names after the task moved on.
            let current = self.live.get(&(j, task)).filter(|l| l.attempt == attempt);
            let pool = current.map(|l| (l.pool, l.price_micro_yuan_per_unit_hour));
            let start = self
                .live
                .get(&(j, task))
                .and_then(|l| l.start_ms)
                .unwrap_or(at);
            let pool_id = pool.map_or_else(String::new, |(p, _)| {
                self.setup.pools[p as usize].id.clone()
            });
            let wall_ms = (at - start).max(0) as u64;
            usage.push(Usage {
                job: id.clone(),
                task,
                attempt,
                seq: 0,
                pool: pool_id,
                units: arrival.def.units,
                wall_ms,
            });
            walls.push((pool, wall_ms, !fails));
        }
        let site_id = self.setup.sites[site].id.clone();
        let decided = self.model.report(&site_id, &statuses, &usage, self.now);
        self.m.events += 1;
        let mut reported = BTreeSet::new();
        for ((record, outcome), (&(_, j, task, _), (pool, wall_ms, ok))) in usage
            .iter()
            .zip(&decided.usage)
            .zip(finished.iter().zip(&walls))
        {
            if *outcome != Outcome::Accepted {
                continue;
            }
            let (pool, price) = pool.expect("an accepted record names its attempt's pool");
            let pool = &self.setup.pools[pool as usize];
            let units = self.setup.arrivals[j as usize].def.units;
            let unit_ms = u128::from(units) * u128::from(*wall_ms);
            self.m.usage_unit_ms += unit_ms;
            let rated = suanwang_core::metering::shipped()
                .at(self.now)
                .rate(&pool.device_model, pool.kind, units, *wall_ms)
                .expect("a simulated attempt rates");
            self.m.micro_scu_hours += u128::from(rated.micro_scu_hours);
            if rated.unrated.is_some() {
                self.m.unrated_unit_ms += unit_ms;
            }
            self.m.charged_micro_yuan +=
                (unit_ms as i128 * i128::from(price) + 1_800_000) / 3_600_000;
            self.jobs[j as usize]
                .usage
                .push((site as u32, task, record.attempt));
            let _ = ok;
        }
        for ((&(_, j, task, _), outcome), (_, wall_ms, ok)) in
            finished.iter().zip(&decided.statuses).zip(&walls)
        {
            match outcome {
                Outcome::Accepted => {
                    let units = self.setup.arrivals[j as usize].def.units;
                    self.m.reported_unit_ms += u128::from(units) * u128::from(*wall_ms);
                    reported.insert((j, task, *ok));
                }
                Outcome::Duplicate | Outcome::Rejected(_) => self.m.reports_rejected += 1,
            }
        }
        self.absorb(&decided.changes, Cause::Report, &reported);
        self.retire_finished(&decided.changes);
    }

    /// A failure starts or ends.
    pub(crate) fn transition(&mut self, tr: Transition) {
        let site_id = self.setup.sites[tr.site].id.clone();
        self.m.events += 1;
        if tr.start {
            // Its last heartbeat before it fell silent.
            let last = self.last_tick(self.now) + self.setup.lease_ms;
            if self.model.view.sites[&site_id].healthy {
                self.model.heartbeat(&site_id, last);
            }
            self.sites[tr.site] = match tr.fault {
                Fault::Down => SiteState::Down { since_ms: self.now },
                Fault::Partition => SiteState::Partition { outbox: Vec::new() },
            };
            return;
        }
        let before = std::mem::replace(&mut self.sites[tr.site], SiteState::Up);
        self.model
            .heartbeat(&site_id, self.now + self.setup.lease_ms);
        self.dirty = true;
        match before {
            SiteState::Partition { outbox } => {
                if !outbox.is_empty() {
                    self.report(tr.site, &outbox);
                }
            }
            SiteState::Down { .. } => {
                // The restarted agent finds its attempts gone.
                let gone: Vec<(u32, u64, u32)> = self
                    .live
                    .iter()
                    .filter(|(_, l)| {
                        l.start_ms.is_some() && self.setup.pools[l.pool as usize].site == tr.site
                    })
                    .map(|(&(j, task), l)| (j, task, l.attempt))
                    .collect();
                if !gone.is_empty() {
                    let statuses: Vec<Status> = gone
                        .iter()
                        .map(|&(j, task, attempt)| {
                            let mut s = status(
                                &self.jobs[j as usize].id,
                                task,
                                attempt,
                                ReportedState::Failed,
                            );
                            s.reason = Some("the site restarted; the attempt was gone".into());
                            s
                        })
                        .collect();
                    let decided = self.model.report(&site_id, &statuses, &[], self.now);
                    self.m.events += 1;
                    let reported = gone.iter().map(|&(j, task, _)| (j, task, false)).collect();
                    self.absorb(&decided.changes, Cause::Report, &reported);
                    self.retire_finished(&decided.changes);
                }
            }
            SiteState::Up => unreachable!("a failure ends on a failed site"),
        }
        // What was assigned while it was silent and is still its own.
        let waiting = std::mem::take(&mut self.unstarted[tr.site]);
        let current: Vec<(u32, u64, u32)> = waiting
            .into_iter()
            .filter(|&(j, task, attempt)| {
                self.live
                    .get(&(j, task))
                    .is_some_and(|l| l.attempt == attempt)
            })
            .collect();
        self.start(&current);
    }

    /// The lease check of a round, run while some site is silent: first
    /// the up sites' latest heartbeats, then `machine::lease`.
    pub(crate) fn lease_check(&mut self) {
        let silent = self.sites.iter().enumerate().any(|(i, s)| {
            *s != SiteState::Up && self.model.view.sites[&self.setup.sites[i].id].healthy
        });
        if !silent {
            return;
        }
        let renewed = self.last_tick(self.now) + self.setup.lease_ms;
        for (i, state) in self.sites.iter().enumerate() {
            let id = &self.setup.sites[i].id;
            let stored = self.model.view.sites[id].lease_expires_at_ms;
            if *state == SiteState::Up && stored.is_none_or(|at| at < renewed) {
                self.model.heartbeat(id, renewed);
            }
        }
        let lapsed = lease::lapsed(&self.model.view.sites, self.now);
        self.m.events += 1;
        if lapsed.is_empty() {
            return;
        }
        let changes = lease::lapse(&self.model.view, &lapsed);
        self.absorb(&changes, Cause::Lapse, &BTreeSet::new());
        self.model.apply(&changes, self.now);
        self.retire_finished(&changes);
        self.dirty = true;
    }

    /// The time of the last heartbeat an up agent sent by `t`.
    fn last_tick(&self, t: i64) -> i64 {
        START_MS + (t - START_MS).div_euclid(self.setup.heartbeat_ms) * self.setup.heartbeat_ms
    }
}

fn status(job: &str, task: u64, attempt: u32, state: ReportedState) -> Status {
    Status {
        job: job.to_owned(),
        task,
        attempt,
        state,
        exit_code: None,
        reason: None,
        output_tail: None,
    }
}

/// A uniform draw in [0, 1) for one attempt, from the seed alone
/// (splitmix64): whether it fails does not depend on the policy's order.
fn draw(seed: u64, job: u32, task: u64, attempt: u32) -> f64 {
    let mut z = seed
        ^ u64::from(job).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ task.wrapping_mul(0xd1b5_4a32_d192_ed03)
        ^ u64::from(attempt).rotate_left(48);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
