//! How jobs end before their tasks do: a cancel, a missed deadline.

use super::{Changes, View, Work};
use crate::deadline;
use crate::lifecycle::{EventKind, TaskEvent, TaskState};
use crate::spec::JobKind;

/// A tenant (or operator) cancels `job`: every unfinished task is
/// cancelled, the never-placed ones get their rows as cancelled, and the
/// sites that lose an attempt are told. A finished job stays what it was;
/// cancelling twice changes nothing the second time. `None` if there is no
/// such job.
///
/// What the view must hold: the job with its counts, and its pending,
/// placed and running rows.
pub fn cancel(view: &View, job: &str, by: &str) -> Option<Changes> {
    let found = view.jobs.get(job)?;
    let mut work = Work::new(view);
    let unfinished = [TaskState::Pending, TaskState::Placed, TaskState::Running];
    let mut done = 0u64;
    for (index, task) in work.rows_in(job, &unfinished) {
        work.apply(job, index, TaskEvent::Cancel, None)
            .expect("cancel applies to every unfinished task");
        if task.state.holds_capacity() {
            if let Some(site) = &task.site {
                work.site(site).bump_version = true;
            }
        }
        done += 1;
    }
    done += work.end_tail(job, TaskEvent::Cancel, None);
    let open = !found.state.is_terminal() && !found.cancel_requested;
    if open {
        let change = work.job_change(job);
        change.cancel_requested = true;
        change.clear_why = true;
        work.touch_job(job);
    }
    if done > 0 || open {
        work.event(
            job,
            None,
            EventKind::Cancelled,
            format!("{done} unfinished tasks cancelled by {by}"),
        );
    }
    Some(work.finish())
}

/// `job`'s waiting tasks can no longer finish by its deadline
/// (`deadline::verdict` said `Missed`): they fail for good with the reason
/// `deadline`, pending rows and the never-placed tail alike. A gang's
/// placed and running members are then cancelled. A job cancelled or
/// finished meanwhile, or with nothing waiting, is left as it is.
///
/// What the view must hold: the job with its counts and its pending rows;
/// for a gang, its placed and running rows too.
pub fn deadline_missed(view: &View, job: &str, deadline_ms: i64) -> Changes {
    let mut work = Work::new(view);
    let Some(found) = view.jobs.get(job) else {
        return work.finish();
    };
    if found.cancel_requested || found.state.is_terminal() {
        return work.finish();
    }
    let reason = deadline::REASON;
    let mut failed = 0u64;
    for (index, _) in work.rows_in(job, &[TaskState::Pending]) {
        work.apply(
            job,
            index,
            TaskEvent::DeadlineMissed,
            Some(reason.to_owned()),
        )
        .expect("a missed deadline applies to pending tasks");
        failed += 1;
    }
    failed += work.end_tail(job, TaskEvent::DeadlineMissed, Some(reason.to_owned()));
    if failed == 0 {
        return work.finish();
    }
    let detail = format!(
        "{failed} waiting tasks failed: deadline {} can no longer be met",
        deadline::format_ms(deadline_ms)
    );
    work.event(job, None, EventKind::Deadline, detail);
    if found.kind == JobKind::Gang {
        work.gang_follow(job, true);
    }
    work.finish()
}
