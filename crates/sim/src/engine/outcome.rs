//! Reading the machine's decisions: which attempts ended, with what, and
//! which jobs finished. The machine decides; this module only keeps the
//! twin's books in step with what it decided.

use std::collections::BTreeSet;

use suanwang_core::lifecycle::TaskState;
use suanwang_core::machine::Changes;

use super::measure::{kind_index, HOUR_MS};
use super::{job_of, Live, SiteState, Twin};

/// What produced a set of changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A site's report: the tasks it named ended by their own status;
    /// any other task that changed followed its gang.
    Report,
    /// A lease lapse: every attempt it ended was lost with its site.
    Lapse,
    /// A cancel or a missed deadline.
    Cancel,
}

impl Twin<'_> {
    /// Ends the attempts `changes` take off their units, and notes the
    /// tasks that wait again. `reported` holds the (job, task) a report's
    /// accepted final statuses named, with whether they succeeded.
    pub(crate) fn absorb(
        &mut self,
        changes: &Changes,
        cause: Cause,
        reported: &BTreeSet<(u32, u64, bool)>,
    ) {
        for change in &changes.tasks {
            let j = job_of(&change.job);
            let key = (j, change.index);
            if change.state == TaskState::Pending {
                self.waiting.insert(j);
                self.dirty = true;
            }
            if change.state.holds_capacity() {
                continue;
            }
            let Some(live) = self.live.remove(&key) else {
                continue;
            };
            let succeeded = reported.contains(&(j, change.index, true));
            let failed = reported.contains(&(j, change.index, false));
            self.end_attempt(j, live, succeeded);
            match cause {
                Cause::Lapse => self.m.tasks_lost += 1,
                Cause::Report if failed => self.m.attempts_failed += 1,
                Cause::Report if !succeeded => self.m.tasks_requeued += 1,
                Cause::Report | Cause::Cancel => {}
            }
        }
    }

    /// The books of one attempt that no longer holds units.
    fn end_attempt(&mut self, j: u32, live: Live, succeeded: bool) {
        let pool = &self.setup.pools[live.pool as usize];
        let def = &self.setup.arrivals[j as usize].def;
        self.used[live.pool as usize] -= def.units;
        self.dirty = true;
        let Some(start) = live.start_ms else {
            return;
        };
        // A task on a site that went down stopped when the site did.
        let end = match self.sites[pool.site] {
            SiteState::Down { since_ms } if since_ms >= start => since_ms.min(self.now),
            _ => self.now,
        };
        let run_ms = (end - start).max(0);
        let unit_ms = u128::from(def.units) * run_ms as u128;
        let unit_hours = unit_ms as f64 / HOUR_MS;
        self.m.run_unit_ms[kind_index(pool.kind)] += unit_ms;
        let kwh = unit_hours * pool.power_kw_per_unit * pool.pue;
        let kg = kwh * pool.grid_kg_co2_per_kwh;
        self.m.energy_kwh += kwh;
        self.m.carbon_kg += kg;
        let list = pool.price_micro_yuan_per_unit_hour as f64 / 1e6;
        self.m.resource_cost_yuan +=
            unit_hours * list + kg * self.setup.topology.carbon_yuan_per_kg;
        if succeeded {
            self.m.value_yuan += unit_hours * def.bid_micro_yuan_per_unit_hour as f64 / 1e6;
        } else {
            self.m.rerun_unit_ms += unit_ms;
        }
    }

    /// Jobs `changes` made terminal leave the model (see the module doc of
    /// `engine`): their rows, details, explanations and usage keys.
    pub(crate) fn retire_finished(&mut self, changes: &Changes) {
        for change in &changes.jobs {
            let Some(state) = change.state.filter(|s| s.is_terminal()) else {
                continue;
            };
            let j = job_of(&change.job);
            let run = &mut self.jobs[j as usize];
            assert!(run.final_state.is_none(), "job {} ends once", run.id);
            run.final_state = Some(state);
            let id = run.id.clone();
            let usage = std::mem::take(&mut run.usage);
            let view = &mut self.model.view;
            view.jobs
                .remove(&id)
                .expect("a finished job was in the model");
            let keys: Vec<(String, u64)> = view
                .tasks
                .range((id.clone(), 0)..=(id.clone(), u64::MAX))
                .map(|(k, _)| k.clone())
                .collect();
            for key in &keys {
                view.tasks.remove(key);
                self.model.details.remove(key);
            }
            for (site, task, attempt) in usage {
                let site = self.setup.sites[site as usize].id.clone();
                view.usage.remove(&(site, id.clone(), task, attempt, 0));
            }
            self.model.whys.remove(&id);
            self.waiting.remove(&j);
            self.last_reason.remove(&j);
        }
    }
}
