//! Deadlines: the tasks of a job that can no longer meet its deadline and
//! still wait fail with the reason `deadline`, never-placed ones included
//! (they get their rows); what is placed or running, or done, is left as it
//! is, except a gang's members, which follow the member that failed.

use suanwang_core::lifecycle::TaskState;
use suanwang_store::{ItemOutcome, MissedDeadline};

use crate::harness::*;

fn missed(job: &str) -> MissedDeadline {
    MissedDeadline {
        job: job.to_owned(),
        deadline_ms: T0 + 500,
    }
}

/// (state, reason) of each task of `job`, by index.
async fn tasks_of(store: &dyn suanwang_store::Store, job: &str) -> Vec<(String, Option<String>)> {
    store
        .tasks(job, None, 1_000)
        .await
        .expect("tasks")
        .into_iter()
        .map(|t| (t.state.as_str().to_owned(), t.reason))
        .collect()
}

fn failed() -> (String, Option<String>) {
    ("failed".to_owned(), Some("deadline".to_owned()))
}

contract!(never_placed_tasks_fail_with_their_rows, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j", &w.tenant, 3, 1, 2)).await;
    submit(&*store, job("other", &w.tenant, 2, 1, 0)).await;

    assert_eq!(
        store
            .fail_missed_deadlines(&[missed("j")], T0 + 10)
            .await
            .unwrap(),
        3
    );
    // Every task has a row now, failed for good although retries were left.
    assert_eq!(tasks_of(&*store, "j").await, vec![failed(); 3]);
    assert_eq!(job_state(&*store, "j").await, "failed");
    let row = store.job("j").await.unwrap().unwrap();
    assert_eq!(row.counts, [(TaskState::Failed, 3)]);
    let events = store.events("j", 0, 100).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.task, last.at_ms),
        ("deadline", None, T0 + 10)
    );
    assert!(
        last.detail.contains("3 waiting tasks failed"),
        "{}",
        last.detail
    );
    // The job waits no more; another job is untouched.
    let input = store.round_input().await.unwrap();
    let waiting: Vec<&str> = input.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(waiting, ["other"]);
    assert_eq!(job_state(&*store, "other").await, "pending");

    // Again: nothing left to fail, no second event.
    assert_eq!(
        store
            .fail_missed_deadlines(&[missed("j")], T0 + 20)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.events("j", 0, 100).await.unwrap().len(), events.len());
});

contract!(running_and_done_tasks_are_left_alone, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    // Five tasks: 0 succeeds, 1 runs, 2 failed and waits for its retry, 3
    // and 4 were never placed.
    submit(&*store, job("j", &w.tenant, 5, 1, 1)).await;
    place(&*store, "j", &w.pool, &w.site, 3).await;
    let reports = [
        status("j", 0, 1, "succeeded"),
        status("j", 1, 1, "running"),
        status("j", 2, 1, "failed"),
    ];
    store.report(&w.site, &reports, &[], T0 + 2).await.unwrap();
    assert_eq!(
        task_states(&*store, "j").await,
        strings(&["succeeded", "running", "pending", "pending", "pending"])
    );

    assert_eq!(
        store
            .fail_missed_deadlines(&[missed("j")], T0 + 10)
            .await
            .unwrap(),
        3
    );
    let tasks = tasks_of(&*store, "j").await;
    assert_eq!(tasks[0].0, "succeeded");
    assert_eq!(tasks[1].0, "running");
    assert_eq!(tasks[2..], [failed(), failed(), failed()]);
    // The running task goes on, and may still succeed.
    assert_eq!(job_state(&*store, "j").await, "running");
    let (_, assigned) = store.assignments(&w.site).await.unwrap();
    assert_eq!(assigned.iter().map(|a| a.task).collect::<Vec<_>>(), [1]);
    let (outcomes, _) = store
        .report(&w.site, &[status("j", 1, 1, "succeeded")], &[], T0 + 20)
        .await
        .unwrap();
    assert_eq!(outcomes, [ItemOutcome::Accepted]);
    assert_eq!(job_state(&*store, "j").await, "failed");
});

contract!(a_gang_member_that_misses_cancels_its_peers, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    // A gang with two members running and one never placed (a test of the
    // store alone: the round places a gang whole, but the store follows the
    // gang rule on whatever it finds).
    submit(&*store, gang("g", &w.tenant, 3, 2)).await;
    place(&*store, "g", &w.pool, &w.site, 2).await;
    let running = [status("g", 0, 1, "running"), status("g", 1, 1, "running")];
    store.report(&w.site, &running, &[], T0 + 2).await.unwrap();
    let version = store.site_version(&w.site).await.unwrap();

    assert_eq!(
        store
            .fail_missed_deadlines(&[missed("g")], T0 + 10)
            .await
            .unwrap(),
        1
    );
    let tasks = tasks_of(&*store, "g").await;
    let states: Vec<&str> = tasks.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(states, ["cancelled", "cancelled", "failed"]);
    assert_eq!(tasks[2], failed());
    assert_eq!(job_state(&*store, "g").await, "failed");
    // The site's agent learns that its attempts are gone.
    assert!(store.site_version(&w.site).await.unwrap() > version);
    assert!(store.assignments(&w.site).await.unwrap().1.is_empty());
    let kinds: Vec<String> = store
        .events("g", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(
        kinds[kinds.len() - 3..],
        strings(&["deadline", "gang", "gang"])
    );
});

contract!(cancelled_and_missing_jobs_are_skipped, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("c", &w.tenant, 2, 1, 0)).await;
    submit(&*store, job("j", &w.tenant, 2, 1, 0)).await;
    store
        .cancel("c", None, &audit(&w.tenant, "job.cancel", "c"))
        .await
        .unwrap();
    // Unsorted, repeated, and one that does not exist: jobs are taken once,
    // in id order.
    let all = [missed("j"), missed("c"), missed("nope"), missed("j")];
    assert_eq!(store.fail_missed_deadlines(&all, T0 + 10).await.unwrap(), 2);
    assert_eq!(
        task_states(&*store, "c").await,
        strings(&["cancelled", "cancelled"])
    );
    assert_eq!(job_state(&*store, "c").await, "cancelled");
    assert_eq!(tasks_of(&*store, "j").await, vec![failed(); 2]);
    assert_eq!(store.fail_missed_deadlines(&[], T0 + 10).await.unwrap(), 0);
});
