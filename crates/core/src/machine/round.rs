//! A round's plan as row changes: how the placements the engine chose
//! (`core::round`) become task rows placed and job rows updated. Pure; both
//! stores and the simulator apply exactly this.
//!
//! A job's task rows exist only for `idx < tasks_materialized` (lazy task
//! rows, see ARCHITECTURE.md); every higher index is pending and was never
//! placed. A placement of `count` tasks takes the job's lowest pending
//! tasks: first the pending rows (tasks that went back to pending: retried,
//! lost), then never-placed indexes from `tasks_materialized` up. The first
//! become row updates, the second one row insert per task, written as index
//! ranges so a 100,000-task round is a handful of statements.

use std::collections::{BTreeMap, BTreeSet};

use crate::lifecycle::{JobState, Task, TaskEvent, TaskState};
use crate::price::AttemptPrice;

/// One placement a round chose: `count` tasks of `job` on `pool` at
/// `site`, each attempt at `price`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub job: String,
    pub pool: String,
    pub site: String,
    pub count: u64,
    pub price: AttemptPrice,
}

/// A placed job as the round's write finds it, under its lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobNow {
    pub tasks: u64,
    pub materialized: u64,
    pub units: u64,
    pub cancel_requested: bool,
    pub state: JobState,
}

/// A pending task row placed: its new state and attempt (`lifecycle`'s
/// `Place`), pool and site; the last attempt's outcome is cleared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement<'a> {
    pub job: &'a str,
    pub index: u64,
    pub state: TaskState,
    pub attempt: u32,
    pub pool: &'a str,
    pub site: &'a str,
    pub price: AttemptPrice,
}

/// What `Place` makes of a task that was pending at `attempt`.
fn place(attempt: u32) -> Task {
    let placed = Task {
        state: TaskState::Pending,
        attempt,
        retries: u32::MAX,
    }
    .apply(TaskEvent::Place)
    .expect("a pending task can be placed");
    assert_eq!(placed.attempt, attempt + 1, "a placement begins an attempt");
    placed
}

/// What `Place` makes of a never-placed task: the state and attempt every
/// row a round creates starts in (one value for all of them, so the
/// set-wise insert binds it once).
pub fn first_placement() -> (TaskState, u32) {
    let first = place(0);
    (first.state, first.attempt)
}

/// Never-placed tasks `low..high` of `job`, created as placed on `pool`
/// (in [`first_placement`]'s state and attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insert<'a> {
    pub job: &'a str,
    pub low: u64,
    pub high: u64,
    pub units: u64,
    pub pool: &'a str,
    pub site: &'a str,
    pub price: AttemptPrice,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoundPlan<'a> {
    /// Pending task rows to place.
    pub updates: Vec<Placement<'a>>,
    /// Sorted by (job, low); ranges never overlap.
    pub inserts: Vec<Insert<'a>>,
    /// (job, tasks_materialized after the round), for jobs that grew rows.
    pub materialized: Vec<(&'a str, u64)>,
    /// Tasks placed per (job, pool, site): the round's events.
    pub placed: BTreeMap<(&'a str, &'a str, &'a str), u64>,
    /// Jobs with at least one task placed, sorted.
    pub jobs: Vec<&'a str>,
    /// Sites given at least one task, sorted: their assignments changed.
    pub sites: BTreeSet<&'a str>,
}

/// One `jobs` row change of a round: at most one per job, so each row gets
/// one new version however many things the round changes on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobUpdate<'a> {
    pub id: &'a str,
    /// The new `tasks_materialized`, when the round created rows.
    pub materialized: Option<u64>,
    /// The job's new state, when placing its tasks changed it.
    pub state: Option<JobState>,
    /// `Some(why)`: set the explanation (`None` clears it).
    pub why: Option<Option<&'a str>>,
}

/// A job's state once some of its pending tasks were placed: a pending job
/// becomes placed (what `lifecycle::job_state` gives once a task holds
/// capacity and none runs); a job already placed or running stays so.
pub fn state_after_placement(state: JobState) -> JobState {
    match state {
        JobState::Pending => JobState::Placed,
        other => other,
    }
}

/// How many of a job's waiting tasks a round may place: all of them,
/// except that a gang runs whole or not at all, so it is offered only when
/// every unfinished task waits (`live` counts pending, placed and running).
pub fn offered(kind: crate::spec::JobKind, pending: u64, live: u64) -> u64 {
    assert!(
        pending <= live,
        "waiting tasks are among the unfinished ones"
    );
    if kind == crate::spec::JobKind::Gang && pending != live {
        0
    } else {
        pending
    }
}

impl<'a> RoundPlan<'a> {
    pub fn placed_total(&self) -> u64 {
        self.placed.values().sum()
    }

    /// The round's `jobs` row changes, sorted by id: placements (a pending
    /// job becomes placed and loses its explanation), rows created, and the
    /// explanations (`whys`; the last one for a job wins). `jobs` are the
    /// placed jobs as `plan` read them.
    pub fn job_updates(
        &self,
        jobs: &BTreeMap<String, JobNow>,
        whys: &'a [(String, Option<String>)],
    ) -> Vec<JobUpdate<'a>> {
        let mut updates: BTreeMap<&'a str, JobUpdate<'a>> = BTreeMap::new();
        let entry = |updates: &mut BTreeMap<&'a str, JobUpdate<'a>>, id: &'a str| {
            updates.entry(id).or_insert(JobUpdate {
                id,
                materialized: None,
                state: None,
                why: None,
            });
        };
        for &job in &self.jobs {
            entry(&mut updates, job);
            let now = jobs.get(job).expect("a placed job was read");
            let after = state_after_placement(now.state);
            if after != now.state {
                let update = updates.get_mut(job).expect("inserted");
                update.state = Some(after);
                update.why = Some(None);
            }
        }
        for &(job, n) in &self.materialized {
            entry(&mut updates, job);
            updates.get_mut(job).expect("inserted").materialized = Some(n);
        }
        for (job, why) in whys {
            entry(&mut updates, job);
            updates.get_mut(job.as_str()).expect("inserted").why = Some(why.as_deref());
        }
        updates.into_values().collect()
    }
}

/// Plans the row changes of `placements` given the
/// placed jobs as they are now and their pending task rows (sorted indexes).
///
/// A job that was cancelled or removed since the round read it gets nothing;
/// a job with fewer pending tasks than planned (cancelled meanwhile) gets
/// what it has. Never more than planned.
pub fn plan<'a>(
    placements: &'a [Placed],
    jobs: &BTreeMap<String, JobNow>,
    pending_rows: &BTreeMap<String, Vec<(u64, u32)>>,
) -> RoundPlan<'a> {
    let mut by_job: BTreeMap<&'a str, Vec<&'a Placed>> = BTreeMap::new();
    for placed in placements {
        assert!(placed.count > 0, "a placement places at least one task");
        assert!(
            placed.price.price_micro_yuan_per_unit_hour
                <= placed.price.bid_micro_yuan_per_unit_hour,
            "pay-as-clear: a task never pays more than its bid"
        );
        by_job.entry(placed.job.as_str()).or_default().push(placed);
    }
    let mut plan = RoundPlan::default();
    let no_rows = Vec::new();
    for (job, wanted) in by_job {
        let Some(now) = jobs.get(job) else { continue };
        if now.cancel_requested {
            continue;
        }
        assert!(
            now.materialized <= now.tasks,
            "job {job}: rows beyond its tasks"
        );
        let rows = pending_rows.get(job).unwrap_or(&no_rows);
        let mut rows = rows.iter().copied();
        let mut next_new = now.materialized;
        for wanted in wanted {
            let (pool, site, count, price) = (
                wanted.pool.as_str(),
                wanted.site.as_str(),
                wanted.count,
                wanted.price,
            );
            let mut placed = 0;
            while placed < count {
                let Some((idx, attempt)) = rows.next() else {
                    break;
                };
                assert!(
                    idx < now.materialized,
                    "job {job}: pending row {idx} not materialized"
                );
                let next = place(attempt);
                plan.updates.push(Placement {
                    job,
                    index: idx,
                    state: next.state,
                    attempt: next.attempt,
                    pool,
                    site,
                    price,
                });
                placed += 1;
            }
            let new = (count - placed).min(now.tasks - next_new);
            if new > 0 {
                plan.inserts.push(Insert {
                    job,
                    low: next_new,
                    high: next_new + new,
                    units: now.units,
                    pool,
                    site,
                    price,
                });
                next_new += new;
                placed += new;
            }
            if placed > 0 {
                *plan.placed.entry((job, pool, site)).or_insert(0) += placed;
                plan.sites.insert(site);
                if plan.jobs.last() != Some(&job) {
                    plan.jobs.push(job);
                }
            }
        }
        if next_new > now.materialized {
            plan.materialized.push((job, next_new));
        }
    }
    // Postconditions: no task twice, never more than planned.
    let planned: u64 = placements.iter().map(|p| p.count).sum();
    let inserted: u64 = plan.inserts.iter().map(|i| i.high - i.low).sum();
    assert_eq!(plan.placed_total(), plan.updates.len() as u64 + inserted);
    assert!(
        plan.placed_total() <= planned,
        "a round placed more tasks than planned"
    );
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tasks: u64, materialized: u64) -> JobNow {
        JobNow {
            tasks,
            materialized,
            units: 2,
            cancel_requested: false,
            state: JobState::Pending,
        }
    }

    /// Runs `plan` and renders it as one line per row change.
    fn check(
        placements: &[(&str, &str, u64)],
        jobs: &[(&str, JobNow)],
        pending: &[(&str, &[u64])],
        expect: &str,
    ) {
        let placements: Vec<Placed> = placements
            .iter()
            .map(|(job, pool, count)| Placed {
                job: job.to_string(),
                pool: pool.to_string(),
                site: format!("s{pool}"),
                count: *count,
                price: AttemptPrice {
                    price_micro_yuan_per_unit_hour: 1_000_000,
                    transfer_micro_yuan_per_gb: 0,
                    bid_micro_yuan_per_unit_hour: 1_000_000,
                    data_mb: 0,
                },
            })
            .collect();
        let jobs = jobs
            .iter()
            .map(|(id, now)| (id.to_string(), *now))
            .collect();
        let pending = pending
            .iter()
            .map(|(id, rows)| (id.to_string(), rows.iter().map(|&i| (i, 1)).collect()))
            .collect();
        let plan = plan(&placements, &jobs, &pending);
        let mut out = String::new();
        for p in &plan.updates {
            out.push_str(&format!(
                "update {}[{}] -> {} attempt {}\n",
                p.job, p.index, p.pool, p.attempt
            ));
        }
        for i in &plan.inserts {
            out.push_str(&format!(
                "insert {}[{}..{}] -> {}\n",
                i.job, i.low, i.high, i.pool
            ));
        }
        for (job, n) in &plan.materialized {
            out.push_str(&format!("materialized {job} = {n}\n"));
        }
        assert_eq!(out.trim_end(), expect.trim(), "plan: {plan:?}");
    }

    #[test]
    fn never_placed_tasks_become_inserts_in_index_order() {
        check(
            &[("a", "p1", 3), ("a", "p2", 2), ("b", "p1", 1)],
            &[("a", job(10, 0)), ("b", job(1, 0))],
            &[],
            "insert a[0..3] -> p1\ninsert a[3..5] -> p2\ninsert b[0..1] -> p1\n\
             materialized a = 5\nmaterialized b = 1",
        );
    }

    #[test]
    fn pending_rows_go_before_the_never_placed_tail() {
        check(
            &[("a", "p1", 3)],
            &[("a", job(6, 4))],
            &[("a", &[1, 3])],
            "update a[1] -> p1 attempt 2\nupdate a[3] -> p1 attempt 2\ninsert a[4..5] -> p1\nmaterialized a = 5",
        );
    }

    #[test]
    fn a_job_with_fewer_tasks_than_planned_gets_what_it_has() {
        check(
            &[("a", "p1", 5)],
            &[("a", job(6, 4))],
            &[],
            "insert a[4..6] -> p1\nmaterialized a = 6",
        );
    }

    #[test]
    fn cancelled_and_vanished_jobs_get_nothing() {
        let cancelled = JobNow {
            cancel_requested: true,
            ..job(4, 0)
        };
        check(
            &[("a", "p1", 2), ("gone", "p1", 1)],
            &[("a", cancelled)],
            &[],
            "",
        );
    }

    #[test]
    fn one_job_update_per_job() {
        let running = JobNow {
            state: JobState::Running,
            ..job(3, 1)
        };
        let placed = |job: &str, count| Placed {
            job: job.to_string(),
            pool: "p".to_string(),
            site: "s".to_string(),
            count,
            price: crate::machine::script::SCRIPT_PRICE,
        };
        let placements = vec![placed("a", 2), placed("c", 1)];
        let jobs = [("a".to_string(), job(2, 0)), ("c".to_string(), running)]
            .into_iter()
            .collect();
        let plan = plan(&placements, &jobs, &BTreeMap::new());
        let whys = vec![
            ("b".to_string(), Some("no capacity".to_string())),
            ("b".to_string(), Some("bid too low".to_string())),
            (
                "c".to_string(),
                Some("2 tasks wait: no capacity".to_string()),
            ),
        ];
        let updates = plan.job_updates(&jobs, &whys);
        assert_eq!(
            updates,
            [
                JobUpdate {
                    id: "a",
                    materialized: Some(2),
                    state: Some(JobState::Placed),
                    why: Some(None)
                },
                JobUpdate {
                    id: "b",
                    materialized: None,
                    state: None,
                    why: Some(Some("bid too low"))
                },
                JobUpdate {
                    id: "c",
                    materialized: Some(2),
                    state: None,
                    why: Some(Some("2 tasks wait: no capacity"))
                },
            ]
        );
    }

    #[test]
    fn retries_only() {
        check(
            &[("a", "p1", 1), ("a", "p2", 1)],
            &[("a", job(3, 3))],
            &[("a", &[0, 2])],
            "update a[0] -> p1 attempt 2\nupdate a[2] -> p2 attempt 2",
        );
    }
}
