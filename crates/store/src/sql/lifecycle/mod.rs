//! Where the state machine meets the database. Every store function that
//! changes a job's or a task's state does three things here, in one
//! transaction: load the [`View`] a `suanwang_core::machine` function asks
//! for ([`load`]), call it, and apply its [`Changes`] and record its events
//! ([`apply`]). No rule is written here or in SQL: which task moves where,
//! which gang member follows, which job state results, which lease lapsed —
//! all of it is the machine's.
//!
//! *Lock order.* Every transaction that changes task rows locks the jobs
//! involved first, in id order ([`load::jobs`]; a no-op on SQLite's single
//! writer), then tasks, then sites in id order ([`apply::changes`] writes
//! sites last, sorted), so that rounds, reports, cancels and lease lapses
//! never wait on each other in a cycle (ARCHITECTURE.md, "Lock order").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use suanwang_core::lifecycle::{EventKind, TaskState};
use suanwang_core::machine::report::Usage;
use suanwang_core::machine::round::{self as plan_round, JobNow};
use suanwang_core::machine::{ending, lease, report, Changes, Outcome, View};
use suanwang_core::spec::JobKind;

use crate::backend::Backend;
use crate::conn::{Conn, Tx};
use crate::sql::{holds, quoted, usage};
use crate::{
    Audit, Idem, IdemOutcome, ItemOutcome, MissedDeadline, Result, RoundWrite, StatusIn,
    StoreError, UsageIn,
};

pub(crate) mod apply;
pub(crate) mod load;

/// The event kind of a round's placements, as SQL text.
pub(crate) static PLACED_EVENT: LazyLock<String> = LazyLock::new(|| quoted(&[EventKind::Placed]));

/// The `SET` clause that places a pending task row, from a source row `u`
/// (`machine::round::Placement`: state, attempt, pool, site): the new
/// attempt, the last one's outcome cleared.
pub(crate) const PLACE_ROW_SET: &str =
    "state = u.state, attempt = u.attempt, pool = u.pool, site = u.site, \
     exit_code = NULL, reason = NULL, output_tail = NULL, placed_at_ms = u.placed_at_ms, \
     price_micro = u.price_micro, transfer_micro_per_gb = u.transfer_micro_per_gb, \
     bid_micro = u.bid_micro, data_mb = u.data_mb";

/// The `SET` clause of a round's one change to a `jobs` row, from a source
/// row `u` (`machine::round::JobUpdate`: materialized, state, has_why, why).
pub(crate) const ROUND_JOB_SET: &str =
    "tasks_materialized = COALESCE(u.materialized, jobs.tasks_materialized), \
     state = COALESCE(u.state, jobs.state), \
     why = CASE WHEN u.has_why THEN u.why ELSE jobs.why END";

/// A heartbeat: the machine renews the lease; the agent's words are stored
/// beside it.
pub(crate) async fn heartbeat(
    store: &impl Backend,
    site: &str,
    expires_at_ms: i64,
    agent: &crate::AgentStatus,
) -> Result<()> {
    let change = lease::heartbeat(site, expires_at_ms);
    let mut tx = store.begin().await?;
    apply::site(&mut tx, &change).await?;
    apply::agent_status(&mut tx, site, agent).await?;
    tx.commit().await
}

/// A new leader pushes every healthy lease to at least `until_ms`.
pub(crate) async fn extend_leases(store: &impl Backend, until_ms: i64) -> Result<()> {
    let mut tx = store.begin().await?;
    let sites = load::healthy_sites(&mut tx).await?;
    for change in lease::extend(&sites, until_ms) {
        apply::site(&mut tx, &change).await?;
    }
    tx.commit().await
}

/// Lapses the leases that ended before `now_ms` (`machine::lease`);
/// returns the tasks lost with their sites.
pub(crate) async fn expire_leases(store: &impl Backend, now_ms: i64) -> Result<u64> {
    let mut tx = store.begin().await?;
    let sites = load::healthy_sites(&mut tx).await?;
    let lapsed = lease::lapsed(&sites, now_ms);
    if lapsed.is_empty() {
        return Ok(0);
    }
    // The jobs of the lapsed sites' tasks, locked first; then their tasks.
    let held = load::jobs_on_sites(&mut tx, &lapsed).await?;
    let mut view = View {
        sites: sites
            .into_iter()
            .filter(|(id, _)| lapsed.contains(id))
            .collect(),
        ..View::default()
    };
    let held: Vec<&str> = held.iter().map(String::as_str).collect();
    view.jobs = load::jobs(&mut tx, &held, true, true).await?;
    for site in &lapsed {
        for (key, task) in load::active_on_site(&mut tx, site).await? {
            if view.jobs.contains_key(&key.0) {
                view.tasks.insert(key, task);
            }
        }
    }
    load::gang_members(&mut tx, &mut view).await?;
    // The sites last (the lock order), locked now: a heartbeat that
    // committed since they were read renewed the lease, and the decision
    // was made on a stale row. Nothing is written; the next check decides
    // again on fresh rows.
    if load::lock_sites(&mut tx, &lapsed).await? != view.sites {
        tracing::info!(
            ?lapsed,
            "a lapsing site heartbeat meanwhile; lease check deferred"
        );
        return Ok(0);
    }
    let changes = lease::lapse(&view, &lapsed);
    let lost = changes.events_of(EventKind::Lost);
    apply::changes(&mut tx, &changes, now_ms).await?;
    holds::settle_in(
        &mut tx,
        &view,
        &changes,
        &BTreeSet::new(),
        &store.money(),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(lost)
}

/// A site's report (`machine::report`): usage records decided on the
/// tasks as they were, then the statuses in order.
pub(crate) async fn report(
    store: &impl Backend,
    site: &str,
    statuses: &[StatusIn],
    records: &[UsageIn],
    now_ms: i64,
) -> Result<(Vec<ItemOutcome>, Vec<ItemOutcome>)> {
    let mut tx = store.begin().await?;
    // The jobs whose tasks a status may change are locked (and counted);
    // usage changes no task, so its tasks are read without locks (a lock
    // on them here would break the lock order).
    // Usage jobs are locked too: rating moves each job's rounding carry.
    let mut locked: Vec<&str> = statuses
        .iter()
        .map(|s| s.job.as_str())
        .chain(records.iter().map(|u| u.job.as_str()))
        .collect();
    locked.sort_unstable();
    locked.dedup();
    let mut view = View {
        jobs: load::jobs(&mut tx, &locked, true, true).await?,
        ..View::default()
    };
    let keys: BTreeSet<(&str, u64)> = statuses.iter().map(|s| (s.job.as_str(), s.task)).collect();
    view.tasks = load::tasks(&mut tx, &keys, true).await?;
    // Before the usage-only jobs join the view: only locked jobs' rows are
    // locked.
    load::gang_members(&mut tx, &mut view).await?;
    let unlocked: BTreeSet<(&str, u64)> = records
        .iter()
        .map(|u| (u.job.as_str(), u.task))
        .filter(|key| !keys.contains(key))
        .collect();
    let unlocked_jobs: Vec<&str> = {
        let mut ids: Vec<&str> = unlocked
            .iter()
            .map(|(job, _)| *job)
            .filter(|job| !view.jobs.contains_key(*job))
            .collect();
        ids.dedup();
        ids
    };
    // Usage-only jobs: read (not locked) so a never-placed task is known as
    // such; their counts are not needed (usage changes no task).
    view.jobs
        .extend(load::jobs(&mut tx, &unlocked_jobs, false, false).await?);
    for (key, task) in load::tasks(&mut tx, &unlocked, false).await? {
        view.tasks.entry(key).or_insert(task);
    }
    let usage_in: Vec<Usage> = usage_of(&mut tx, site, records, &mut view).await?;
    let decided = report::report(&view, site, statuses, &usage_in, now_ms);
    // The accepted records, stored in a few statements. The record's key
    // makes a resend harmless: one stored by a report that committed
    // meanwhile is a duplicate too.
    let accepted: Vec<&UsageIn> = records
        .iter()
        .zip(&decided.usage)
        .filter(|(_, outcome)| **outcome == Outcome::Accepted)
        .map(|(record, _)| record)
        .collect();
    let mut now_stored = usage::insert_all(&mut tx, site, &accepted, now_ms)
        .await?
        .into_iter();
    let mut usage_outcomes = Vec::with_capacity(records.len());
    let mut stored = Vec::with_capacity(accepted.len());
    for (record, outcome) in records.iter().zip(decided.usage) {
        let outcome = match outcome {
            Outcome::Accepted if !now_stored.next().expect("one answer per accepted record") => {
                Outcome::Duplicate
            }
            other => other,
        };
        if outcome == Outcome::Accepted {
            stored.push(record);
        }
        usage_outcomes.push(outcome);
    }
    assert!(
        now_stored.next().is_none(),
        "one answer per accepted record"
    );
    // Billed exactly once: in the transaction that stores the record.
    let rated = crate::sql::bills::rate_in(&mut tx, site, &stored, now_ms).await?;
    apply::changes(&mut tx, &decided.changes, now_ms).await?;
    // Ledger accounts last (the lock order).
    holds::settle_in(
        &mut tx,
        &view,
        &decided.changes,
        &rated,
        &store.money(),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok((decided.statuses, usage_outcomes))
}

/// The records as the machine decides on them, and what it decides them
/// against: their stored keys and their attempts' stored wall time (after
/// their jobs are locked).
async fn usage_of(
    conn: &mut impl crate::conn::Conn,
    site: &str,
    records: &[UsageIn],
    view: &mut View,
) -> Result<Vec<Usage>> {
    let keys: Vec<(&str, u64, u32, u32)> = records
        .iter()
        .map(|u| (u.job.as_str(), u.task, u.attempt, u.seq))
        .collect();
    load::usage_stored(conn, site, &keys, view).await?;
    Ok(records
        .iter()
        .map(|record| Usage {
            job: record.job.clone(),
            task: record.task,
            attempt: record.attempt,
            seq: record.seq,
            pool: record.pool.clone(),
            units: record.units,
            wall_ms: record.wall_ms,
        })
        .collect())
}

/// Cancels `job` (`machine::ending::cancel`). Records `idem` in the same
/// transaction.
pub(crate) async fn cancel(
    store: &impl Backend,
    job: &str,
    idem: Option<&Idem>,
    audit: &Audit,
) -> Result<IdemOutcome> {
    let mut tx = store.begin().await?;
    if let Some(idem) = idem {
        if let Some(outcome) = crate::sql::idempotency::claim(&mut tx, idem).await? {
            return Ok(outcome);
        }
    }
    // The job first, then its tasks, then sites.
    let mut view = View {
        jobs: load::jobs(&mut tx, &[job], true, true).await?,
        ..View::default()
    };
    if view.jobs.is_empty() {
        return Err(StoreError::NotFound(format!("job {job}")));
    }
    let unfinished: Vec<TaskState> = TaskState::ALL
        .into_iter()
        .filter(|state| !state.is_terminal())
        .collect();
    view.tasks = load::tasks_in(&mut tx, job, &unfinished).await?;
    let changes = ending::cancel(&view, job, &audit.principal).expect("the job was loaded");
    apply::changes(&mut tx, &changes, audit.at_ms).await?;
    holds::settle_in(
        &mut tx,
        &view,
        &changes,
        &BTreeSet::new(),
        &store.money(),
        audit.at_ms,
    )
    .await?;
    crate::sql::audit_in(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(IdemOutcome::Done)
}

/// Fails the waiting tasks of each job in `missed`
/// (`machine::ending::deadline_missed`), in one transaction: jobs locked in
/// id order, then tasks, then sites. Returns the number of tasks failed.
pub(crate) async fn fail_missed_deadlines(
    store: &impl Backend,
    missed: &[MissedDeadline],
    now_ms: i64,
) -> Result<u64> {
    let mut missed: Vec<&MissedDeadline> = missed.iter().collect();
    missed.sort_by(|a, b| a.job.cmp(&b.job));
    missed.dedup_by(|a, b| a.job == b.job);
    if missed.is_empty() {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    let ids: Vec<&str> = missed.iter().map(|m| m.job.as_str()).collect();
    let jobs = load::jobs(&mut tx, &ids, true, true).await?;
    let mut failed = 0u64;
    let mut all = Changes::default();
    let mut seen = View::default();
    for m in missed {
        let Some(job) = jobs.get(&m.job) else {
            continue;
        };
        let mut states = vec![TaskState::Pending];
        if job.kind == JobKind::Gang {
            states.extend([TaskState::Placed, TaskState::Running]);
        }
        let view = View {
            jobs: [(m.job.clone(), job.clone())].into_iter().collect(),
            tasks: load::tasks_in(&mut tx, &m.job, &states).await?,
            ..View::default()
        };
        let changes = ending::deadline_missed(&view, &m.job, m.deadline_ms);
        failed += changes.tasks_to(TaskState::Failed);
        all.merge(changes);
        seen.jobs.extend(view.jobs);
        seen.tasks.extend(view.tasks);
    }
    apply::changes(&mut tx, &all, now_ms).await?;
    holds::settle_in(
        &mut tx,
        &seen,
        &all,
        &BTreeSet::new(),
        &store.money(),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(failed)
}

/// A round's writes, in the caller's transaction: lock the placed jobs (id
/// order), read them and their pending rows, plan the row changes
/// (`machine::round::plan`: each placement takes the job's lowest pending
/// tasks, rows first), let the backend write them set-wise, then events,
/// job rows (`RoundPlan::job_updates`), site versions and explanations.
pub(crate) async fn write_round<B: Backend>(tx: &mut B::Tx<'_>, round: &RoundWrite) -> Result<()> {
    let mut ids: Vec<&str> = round.placements.iter().map(|p| p.job.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let loaded = load::jobs(tx, &ids, true, false).await?;
    let jobs: BTreeMap<String, JobNow> = loaded
        .into_iter()
        .map(|(id, job)| {
            let now = JobNow {
                tasks: job.tasks,
                materialized: job.materialized,
                units: job.units,
                cancel_requested: job.cancel_requested,
                state: job.state,
            };
            (id, now)
        })
        .collect();
    let pending = load::pending_rows(tx, &ids).await?;
    let plan = plan_round::plan(&round.placements, &jobs, &pending);
    B::write_placements(tx, &plan, round.at_ms).await?;
    let events: Vec<(&str, String)> = plan
        .placed
        .iter()
        .map(|(&(job, pool, site), count)| {
            (job, format!("{count} tasks on pool {pool} at site {site}"))
        })
        .collect();
    let updates = plan.job_updates(&jobs, &round.whys);
    let sites: Vec<&str> = plan.sites.iter().copied().collect();
    B::write_round_rows(tx, &events, &updates, &sites, round.at_ms).await?;
    // Pools after sites in the lock order; then the holds, whose ledger
    // accounts come last.
    super::prices::write(tx, &round.prices, round.at_ms).await?;
    // A hold counts the attempts the plan really made: a job cancelled
    // since the round read it placed fewer (or none), and its hold must
    // still end when they do. Its amount stays what the round reserved
    // (never less than what was placed; the rest is released at settling).
    let mut placed: BTreeMap<&str, u64> = BTreeMap::new();
    for (&(job, _, _), count) in &plan.placed {
        *placed.entry(job).or_default() += count;
    }
    let kept: Vec<crate::RoundHold> = round
        .holds
        .iter()
        .filter_map(|hold| {
            let attempts = placed.get(hold.job.as_str()).copied().unwrap_or(0);
            assert!(
                attempts <= hold.attempts,
                "a round places no more than planned"
            );
            (attempts > 0).then(|| crate::RoundHold {
                attempts,
                ..hold.clone()
            })
        })
        .collect();
    holds::write_in(tx, &kept, round.at_ms).await
}

/// Rows for the never-placed tasks `low..high` of `job`, in `state`
/// (attempt 0) with `reason`.
pub(crate) async fn insert_never_placed(
    tx: &mut impl Conn,
    job: &str,
    low: i64,
    high: i64,
    units: i64,
    state: TaskState,
    reason: Option<&str>,
) -> Result<()> {
    if low >= high {
        return Ok(());
    }
    let done = tx
        .execute(
            "WITH RECURSIVE r(idx) AS (SELECT CAST(? AS BIGINT) UNION ALL SELECT idx + 1 FROM r WHERE idx + 1 < ?) \
             INSERT INTO tasks (job, idx, state, attempt, units, reason) SELECT ?, idx, ?, 0, ?, ? FROM r",
            &[
                low.into(),
                high.into(),
                job.into(),
                state.as_str().into(),
                units.into(),
                reason.into(),
            ],
        )
        .await?;
    assert_eq!(
        done,
        u64::try_from(high - low).expect("low < high"),
        "one row per never-placed task"
    );
    Ok(())
}
