//! Status and usage reports from sites.

use std::sync::Arc;

use suanwang_core::lifecycle::TaskState;
use suanwang_store::{ItemOutcome, UsageRow};

use crate::harness::*;

fn rejected(outcome: &ItemOutcome) -> bool {
    matches!(outcome, ItemOutcome::Rejected(_))
}

contract!(report_status_and_usage, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    let other = site(&*store, &w.provider, "other", "r2").await;
    store
        .heartbeat(&other, T0 + 60_000, &Default::default())
        .await
        .unwrap();
    submit(&*store, job("j1", &w.tenant, 2, 1, 0)).await;
    place(&*store, "j1", &w.pool, &w.site, 2).await;

    let (s, u) = store
        .report(&w.site, &[status("j1", 0, 1, "running")], &[], T0 + 10)
        .await
        .unwrap();
    assert_eq!((s, u), (vec![ItemOutcome::Accepted], vec![]));
    assert_eq!(job_state(&*store, "j1").await, "running");
    // A resend is a harmless duplicate.
    let (s, _) = store
        .report(&w.site, &[status("j1", 0, 1, "running")], &[], T0 + 11)
        .await
        .unwrap();
    assert_eq!(s, [ItemOutcome::Duplicate]);

    // Stale, foreign and unknown reports are rejected. (A malformed state
    // cannot reach the store: `StatusIn::state` is a `ReportedState`.)
    let (s, _) = store
        .report(
            &w.site,
            &[
                status("j1", 0, 2, "succeeded"),
                status("j1", 0, 0, "succeeded"),
                status("j1", 9, 1, "running"),
                status("nope", 0, 1, "running"),
            ],
            &[],
            T0 + 12,
        )
        .await
        .unwrap();
    assert_eq!(s.len(), 4);
    assert!(s.iter().all(rejected), "{s:?}");
    let (s, _) = store
        .report(&other, &[status("j1", 1, 1, "running")], &[], T0 + 12)
        .await
        .unwrap();
    assert!(rejected(&s[0]), "another site's report: {s:?}");
    assert_eq!(
        task_states(&*store, "j1").await,
        strings(&["running", "placed"])
    );

    // Usage: accepted once, then a duplicate; stale or foreign rejected.
    let (_, u) = store
        .report(
            &w.site,
            &[],
            &[usage("j1", 0, 1, 0, &w.pool), usage("j1", 0, 1, 1, &w.pool)],
            // Two minutes of records, a minute after the placement: within
            // the window and its minute of slack.
            T0 + 61_000,
        )
        .await
        .unwrap();
    assert_eq!(u, [ItemOutcome::Accepted, ItemOutcome::Accepted]);
    let (_, u) = store
        .report(
            &w.site,
            &[],
            &[
                usage("j1", 0, 1, 0, &w.pool),
                usage("j1", 0, 2, 0, &w.pool),
                usage("j1", 7, 1, 0, &w.pool),
            ],
            T0 + 61_001,
        )
        .await
        .unwrap();
    assert_eq!(u[0], ItemOutcome::Duplicate);
    assert!(rejected(&u[1]) && rejected(&u[2]), "{u:?}");
    let (_, u) = store
        .report(&other, &[], &[usage("j1", 1, 1, 0, &w.pool)], T0 + 61_001)
        .await
        .unwrap();
    assert!(rejected(&u[0]), "{u:?}");
    let rows = store.usage("j1", None, 1_000).await.unwrap();
    assert_eq!(
        rows,
        [0, 1]
            .map(|seq| UsageRow {
                site: w.site.clone(),
                job: "j1".into(),
                task: 0,
                attempt: 1,
                seq,
                pool: w.pool.clone(),
                units: 1,
                wall_ms: 60_000,
                device_model: "huawei-ascend-910b".into(),
                scu_micro_hours: 2_666_667,
                scu_rated: true,
                catalogue_version: "2026-11".into(),
                site_name: "gz1".into(),
                site_region: "r1".into(),
                pool_name: "main".into(),
            })
            .to_vec()
    );
    // What the server rates a report with: every pool of the site.
    let specs = store.pool_specs(&w.site).await.unwrap();
    assert!(
        specs
            .iter()
            .any(|p| p.id == w.pool && p.kind == "gpu" && p.spec.starts_with('{')),
        "{specs:?}"
    );

    // Success, then its resend.
    let mut done = status("j1", 0, 1, "succeeded");
    done.exit_code = Some(0);
    let (s, _) = store
        .report(&w.site, &[done.clone()], &[], T0 + 20)
        .await
        .unwrap();
    assert_eq!(s, [ItemOutcome::Accepted]);
    let (s, _) = store.report(&w.site, &[done], &[], T0 + 21).await.unwrap();
    assert_eq!(s, [ItemOutcome::Duplicate]);
    // Running after success is an out-of-order resend, not an error.
    let (s, _) = store
        .report(&w.site, &[status("j1", 0, 1, "running")], &[], T0 + 22)
        .await
        .unwrap();
    assert_eq!(s, [ItemOutcome::Duplicate]);
    // Failing after success is not allowed.
    let (s, _) = store
        .report(&w.site, &[status("j1", 0, 1, "failed")], &[], T0 + 22)
        .await
        .unwrap();
    assert!(rejected(&s[0]), "{s:?}");
    // Usage of the finished attempt still counts (it may arrive late).
    let (_, u) = store
        .report(&w.site, &[], &[usage("j1", 0, 1, 2, &w.pool)], T0 + 121_000)
        .await
        .unwrap();
    assert_eq!(u, [ItemOutcome::Accepted]);

    // A short task may succeed before its start report arrives.
    let (s, _) = store
        .report(
            &w.site,
            &[status("j1", 1, 1, "succeeded")],
            &[],
            T0 + 121_001,
        )
        .await
        .unwrap();
    assert_eq!(s, [ItemOutcome::Accepted]);
    let tasks = store.tasks("j1", None, 1_000).await.unwrap();
    assert_eq!(tasks[0].exit_code, Some(0));
    assert_eq!(job_state(&*store, "j1").await, "succeeded");
    assert_eq!(store.pools(&w.site).await.unwrap()[0].used, 0);
});

contract!(report_failure_retries_then_fails, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 1, 1, 1)).await;
    place(&*store, "j1", &w.pool, &w.site, 1).await;

    // Attempt 1 fails with a retry left: back to pending, the job waits.
    let mut failed = status("j1", 0, 1, "failed");
    failed.exit_code = Some(3);
    failed.reason = Some("segfault".into());
    failed.output_tail = Some("core dumped".into());
    let (s, u) = store
        .report(
            &w.site,
            &[failed.clone()],
            &[usage("j1", 0, 1, 0, &w.pool)],
            T0 + 10,
        )
        .await
        .unwrap();
    assert_eq!(
        (s, u),
        (vec![ItemOutcome::Accepted], vec![ItemOutcome::Accepted])
    );
    let task = &store.tasks("j1", None, 1_000).await.unwrap()[0];
    assert_eq!(
        (task.state.as_str(), task.attempt, task.exit_code),
        ("pending", 1, Some(3))
    );
    assert_eq!(task.reason.as_deref(), Some("segfault"));
    assert_eq!(job_state(&*store, "j1").await, "pending");
    let last = store.events("j1", 0, 100).await.unwrap().pop().unwrap();
    assert_eq!((last.kind.as_str(), last.task), ("pending", Some(0)));
    assert!(last.detail.contains("retry"), "{last:?}");
    // The resent failure is a duplicate.
    let (s, _) = store
        .report(&w.site, &[failed], &[], T0 + 11)
        .await
        .unwrap();
    assert_eq!(s, [ItemOutcome::Duplicate]);
    // It waits for the scheduler again, and frees its units.
    let input = store.round_input().await.unwrap();
    assert_eq!(input.jobs.len(), 1);
    assert_eq!((input.jobs[0].pending, input.jobs[0].live), (1, 1));
    assert_eq!(input.pools[0].pool.used, 0);

    // Attempt 2: the new placement clears the old outcome.
    place(&*store, "j1", &w.pool, &w.site, 1).await;
    let task = &store.tasks("j1", None, 1_000).await.unwrap()[0];
    assert_eq!(
        (
            task.state.as_str(),
            task.attempt,
            task.exit_code,
            task.reason.as_deref()
        ),
        ("placed", 2, None, None)
    );
    assert_eq!(job_state(&*store, "j1").await, "placed");
    // Reports and usage of attempt 1 are now stale.
    let (s, u) = store
        .report(
            &w.site,
            &[status("j1", 0, 1, "running")],
            &[usage("j1", 0, 1, 1, &w.pool)],
            T0 + 20,
        )
        .await
        .unwrap();
    assert!(rejected(&s[0]) && rejected(&u[0]), "{s:?} {u:?}");
    // The same sequence number in a new attempt is a new record.
    let (s, u) = store
        .report(
            &w.site,
            &[status("j1", 0, 2, "running")],
            &[usage("j1", 0, 2, 0, &w.pool)],
            T0 + 21,
        )
        .await
        .unwrap();
    assert_eq!(
        (s, u),
        (vec![ItemOutcome::Accepted], vec![ItemOutcome::Accepted])
    );
    assert_eq!(store.usage("j1", None, 1_000).await.unwrap().len(), 2);

    // Attempt 2 fails: no retries left, the job failed.
    let (s, _) = store
        .report(&w.site, &[status("j1", 0, 2, "failed")], &[], T0 + 30)
        .await
        .unwrap();
    assert_eq!(s, [ItemOutcome::Accepted]);
    assert_eq!(task_states(&*store, "j1").await, strings(&["failed"]));
    assert_eq!(job_state(&*store, "j1").await, "failed");
    assert!(store.round_input().await.unwrap().jobs.is_empty());
});

contract!(job_state_follows_tasks, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    // Mixed outcomes: one success and one final failure make a failed job.
    submit(&*store, job("mixed", &w.tenant, 2, 1, 0)).await;
    place(&*store, "mixed", &w.pool, &w.site, 2).await;
    store
        .report(&w.site, &[status("mixed", 0, 1, "succeeded")], &[], T0 + 1)
        .await
        .unwrap();
    assert_eq!(job_state(&*store, "mixed").await, "running");
    store
        .report(&w.site, &[status("mixed", 1, 1, "failed")], &[], T0 + 2)
        .await
        .unwrap();
    assert_eq!(job_state(&*store, "mixed").await, "failed");
    let row = store.job("mixed").await.unwrap().unwrap();
    assert_eq!(
        row.counts,
        [(TaskState::Succeeded, 1), (TaskState::Failed, 1)]
    );

    // Several statuses for several jobs in one report.
    submit(&*store, job("a", &w.tenant, 1, 1, 0)).await;
    submit(&*store, job("b", &w.tenant, 1, 1, 0)).await;
    place(&*store, "a", &w.pool, &w.site, 1).await;
    place(&*store, "b", &w.pool, &w.site, 1).await;
    let (s, _) = store
        .report(
            &w.site,
            &[
                status("b", 0, 1, "running"),
                status("a", 0, 1, "running"),
                status("b", 0, 1, "succeeded"),
            ],
            &[],
            T0 + 3,
        )
        .await
        .unwrap();
    assert_eq!(s, vec![ItemOutcome::Accepted; 3]);
    assert_eq!(job_state(&*store, "a").await, "running");
    assert_eq!(job_state(&*store, "b").await, "succeeded");
});

contract!(concurrent_reports_settle_job_state, |db| {
    // Each task of one job finishes in its own report, all at once: the
    // job's state must account for every one of them.
    let store = db.store.clone();
    let w = world(&*store).await;
    for round in 0..3 {
        let id = format!("j{round}");
        submit(&*store, job(&id, &w.tenant, 12, 1, 0)).await;
        place(&*store, &id, &w.pool, &w.site, 12).await;
        let mut handles = Vec::new();
        for task in 0..12 {
            let store = Arc::clone(&store);
            let (site, id) = (w.site.clone(), id.clone());
            handles.push(tokio::spawn(async move {
                store
                    .report(&site, &[status(&id, task, 1, "succeeded")], &[], T0 + 5)
                    .await
            }));
        }
        for handle in handles {
            let (s, _) = handle.await.unwrap().expect("report");
            assert_eq!(s, [ItemOutcome::Accepted]);
        }
        assert_eq!(job_state(&*store, &id).await, "succeeded", "job {id}");
    }
});
