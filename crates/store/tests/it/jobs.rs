//! Submission, idempotency, listing, events, cancellation.

use std::sync::Arc;

use suanwang_core::lifecycle::{EventKind, JobState, TaskState};
use suanwang_store::{IdemOutcome, ItemOutcome, RoundWrite, StoreError, TaskRow};

use crate::harness::*;

contract!(submit_creates_pending_tasks, |db| {
    let store = db.store.clone();
    let acme = tenant(&*store, "acme").await;
    let outcomes = store
        .submit_batch(&[job("j1", &acme, 4, 2, 1), job("j2", &acme, 1, 1, 0)])
        .await
        .unwrap();
    assert_eq!(outcomes, [IdemOutcome::Done, IdemOutcome::Done]);
    let j1 = store.job("j1").await.unwrap().expect("j1");
    assert_eq!(j1.id, "j1");
    assert_eq!(j1.tenant, acme);
    assert_eq!(j1.name, "j1 name");
    assert_eq!(j1.spec, r#"{"job":"j1"}"#);
    assert_eq!(j1.state, JobState::Pending);
    assert_eq!(j1.tasks, 4);
    assert!(!j1.cancel_requested);
    assert_eq!(j1.created_at_ms, T0);
    assert_eq!(j1.why, None);
    assert_eq!(j1.counts, [(TaskState::Pending, 4)]);
    let tasks = store.tasks("j1", None, 1_000).await.unwrap();
    assert_eq!(tasks.len(), 4);
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(
            *task,
            TaskRow {
                index: i as u64,
                state: TaskState::Pending,
                attempt: 0,
                pool: None,
                site: None,
                exit_code: None,
                reason: None,
                site_name: None,
                site_region: None,
                pool_name: None,
                placed: None,
            }
        );
    }
    assert!(store.job("nope").await.unwrap().is_none());
    assert!(store.tasks("nope", None, 1_000).await.unwrap().is_empty());
    let events = store.events("j1", 0, 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Submitted);
    assert_eq!(events[0].job, "j1");
    assert_eq!(events[0].task, None);
    assert_eq!(store.job_states().await.unwrap(), [(JobState::Pending, 2)]);

    // The new tasks wait for the scheduler.
    let input = store.round_input().await.unwrap();
    let waiting: Vec<(&str, u64, u64)> = input
        .jobs
        .iter()
        .map(|j| (j.id.as_str(), j.pending, j.live))
        .collect();
    assert_eq!(waiting, [("j1", 4, 4), ("j2", 1, 1)]);
    assert_eq!(input.jobs[0].tenant, acme);
    assert_eq!(input.jobs[0].spec, r#"{"job":"j1"}"#);
});

contract!(
    idempotency_records_are_pruned_oldest_first_in_bounded_batches,
    |db| {
        let store = db.store.clone();
        let acme = tenant(&*store, "acme").await;
        // Five records an hour apart: k0 is the oldest.
        let hour_ms = 3_600_000;
        for i in 0..5i64 {
            let mut body = with_idem(job(&format!("j{i}"), &acme, 1, 1, 0), &format!("k{i}"), "h");
            body.idem.as_mut().unwrap().created_at_ms = T0 + i * hour_ms;
            assert_eq!(submit(&*store, body).await, IdemOutcome::Done);
        }
        // Older than T0 + 3 h: k0, k1, k2; a limit of 2 takes the two oldest.
        assert_eq!(
            store.prune_idempotency(T0 + 3 * hour_ms, 2).await.unwrap(),
            2
        );
        for (key, kept) in [("k0", false), ("k1", false), ("k2", true), ("k3", true)] {
            assert_eq!(
                store.idempotent(&acme, key).await.unwrap().is_some(),
                kept,
                "{key}"
            );
        }
        assert_eq!(
            store.prune_idempotency(T0 + 3 * hour_ms, 2).await.unwrap(),
            1
        );
        assert_eq!(
            store.prune_idempotency(T0 + 3 * hour_ms, 2).await.unwrap(),
            0
        );
        assert!(store.idempotent(&acme, "k2").await.unwrap().is_none());
        assert!(store.idempotent(&acme, "k3").await.unwrap().is_some());
        // The job a pruned key created stays; the key used again is a new request.
        assert!(store.job("j0").await.unwrap().is_some());
        assert_eq!(
            submit(
                &*store,
                with_idem(job("j0-again", &acme, 1, 1, 0), "k0", "other")
            )
            .await,
            IdemOutcome::Done
        );
        assert!(store.job("j0-again").await.unwrap().is_some());
    }
);

contract!(submit_idempotency, |db| {
    let store = db.store.clone();
    let acme = tenant(&*store, "acme").await;
    let beta = tenant(&*store, "beta").await;

    assert_eq!(
        submit(&*store, with_idem(job("j1", &acme, 2, 1, 0), "k1", "h1")).await,
        IdemOutcome::Done
    );
    let stored = store
        .idempotent(&acme, "k1")
        .await
        .unwrap()
        .expect("idem stored");
    assert_eq!(stored, idem(&acme, "k1", "h1", r#"{"id":"j1"}"#));
    assert!(store.idempotent(&beta, "k1").await.unwrap().is_none());

    // The same key and body: the original answer, and no second job.
    let replay = submit(
        &*store,
        with_idem(job("j1-again", &acme, 2, 1, 0), "k1", "h1"),
    )
    .await;
    assert_eq!(
        replay,
        IdemOutcome::Replay {
            status: 201,
            body: r#"{"id":"j1"}"#.into()
        }
    );
    assert!(store.job("j1-again").await.unwrap().is_none());
    // The same key, another body.
    let mismatch = submit(
        &*store,
        with_idem(job("j1-other", &acme, 3, 1, 0), "k1", "h2"),
    )
    .await;
    assert_eq!(mismatch, IdemOutcome::Mismatch);
    assert!(store.job("j1-other").await.unwrap().is_none());
    // Keys are per principal.
    assert_eq!(
        submit(&*store, with_idem(job("b1", &beta, 1, 1, 0), "k1", "h1")).await,
        IdemOutcome::Done
    );

    // The same key twice inside one batch: the second sees the first.
    let outcomes = store
        .submit_batch(&[
            with_idem(job("j2", &acme, 1, 1, 0), "k2", "h"),
            job("j3", &acme, 1, 1, 0),
            with_idem(job("j2-dup", &acme, 1, 1, 0), "k2", "h"),
            with_idem(job("j2-mismatch", &acme, 1, 1, 0), "k2", "other"),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            IdemOutcome::Done,
            IdemOutcome::Done,
            IdemOutcome::Replay {
                status: 201,
                body: r#"{"id":"j2"}"#.into()
            },
            IdemOutcome::Mismatch,
        ]
    );
    let ids: Vec<String> = store
        .jobs(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, strings(&["b1", "j1", "j2", "j3"]));
});

contract!(concurrent_submissions_with_one_key, |db| {
    // Eight retries of one request race: one job is created, every other
    // answer is the replay; a racing retry never fails the batch.
    let store = db.store.clone();
    let acme = tenant(&*store, "acme").await;
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        let acme = acme.clone();
        handles.push(tokio::spawn(async move {
            let mut body = job(&format!("race-{i}"), &acme, 2, 1, 0);
            body.idem = Some(idem(&acme, "same-key", "same-hash", "the answer"));
            // A bystander in the same batch must not suffer either.
            let bystander = job(&format!("bystander-{i}"), &acme, 1, 1, 0);
            store.submit_batch(&[body, bystander]).await
        }));
    }
    let mut done = 0;
    for handle in handles {
        let outcomes = handle
            .await
            .unwrap()
            .expect("submit_batch must not fail on a racing key");
        match &outcomes[0] {
            IdemOutcome::Done => done += 1,
            IdemOutcome::Replay { status, body } => {
                assert_eq!((*status, body.as_str()), (201, "the answer"))
            }
            IdemOutcome::Mismatch => panic!("same hash is never a mismatch"),
        }
        assert_eq!(outcomes[1], IdemOutcome::Done);
    }
    assert_eq!(done, 1);
    let jobs = store.jobs(None, None, 100).await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.id.starts_with("race-")).count(), 1);
    assert_eq!(
        jobs.iter()
            .filter(|j| j.id.starts_with("bystander-"))
            .count(),
        8
    );
});

contract!(jobs_paging, |db| {
    let store = db.store.clone();
    let acme = tenant(&*store, "acme").await;
    let beta = tenant(&*store, "beta").await;
    let mut batch = Vec::new();
    for i in 1..=5 {
        batch.push(job(&format!("a{i}"), &acme, 1, 1, 0));
    }
    batch.push(job("b1", &beta, 1, 1, 0));
    batch.push(job("a0b", &beta, 1, 1, 0));
    store.submit_batch(&batch).await.unwrap();

    let page = |tenant: Option<String>, after: Option<&'static str>, limit: u32| {
        let store = Arc::clone(&store);
        async move {
            store
                .jobs(tenant.as_deref(), after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    let a = Some(acme.clone());
    assert_eq!(page(a.clone(), None, 2).await, strings(&["a1", "a2"]));
    assert_eq!(page(a.clone(), Some("a2"), 2).await, strings(&["a3", "a4"]));
    assert_eq!(page(a.clone(), Some("a4"), 2).await, strings(&["a5"]));
    assert!(page(a.clone(), Some("a5"), 2).await.is_empty());
    assert_eq!(
        page(Some(beta.clone()), None, 10).await,
        strings(&["a0b", "b1"])
    );
    assert_eq!(
        page(None, None, 100).await,
        strings(&["a0b", "a1", "a2", "a3", "a4", "a5", "b1"])
    );
    assert_eq!(
        page(None, Some("a3"), 100).await,
        strings(&["a4", "a5", "b1"])
    );
    assert!(page(Some("tenant-nobody".into()), None, 10)
        .await
        .is_empty());
    // Rows carry their counts.
    let rows = store.jobs(Some(&acme), None, 1).await.unwrap();
    assert_eq!(rows[0].counts, [(TaskState::Pending, 1)]);
});

contract!(events_in_order, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 1, 1, 0)).await;
    submit(&*store, job("other", &w.tenant, 1, 1, 0)).await;
    place(&*store, "j1", &w.pool, &w.site, 1).await;
    store
        .report(&w.site, &[status("j1", 0, 1, "running")], &[], T0 + 10)
        .await
        .unwrap();
    let mut done = status("j1", 0, 1, "succeeded");
    done.exit_code = Some(0);
    store.report(&w.site, &[done], &[], T0 + 20).await.unwrap();

    let events = store.events("j1", 0, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "placed", "running", "succeeded"]);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "{events:?}");
    assert!(events.iter().all(|e| e.job == "j1"));
    assert_eq!(events[2].task, Some(0));
    assert_eq!(events[2].at_ms, T0 + 10);
    assert_eq!(events[3].at_ms, T0 + 20);
    // Paging by sequence.
    let first_two = store.events("j1", 0, 2).await.unwrap();
    assert_eq!(first_two, events[..2]);
    let rest = store.events("j1", first_two[1].seq, 100).await.unwrap();
    assert_eq!(rest, events[2..]);
    assert!(store
        .events("j1", events[3].seq, 100)
        .await
        .unwrap()
        .is_empty());
    // Another job's events are its own.
    let other: Vec<String> = store
        .events("other", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(other, strings(&["submitted"]));
});

contract!(job_states_count_jobs, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    for id in ["p1", "p2", "r1", "c1", "s1"] {
        submit(&*store, job(id, &w.tenant, 1, 1, 0)).await;
    }
    place(&*store, "r1", &w.pool, &w.site, 1).await;
    place(&*store, "s1", &w.pool, &w.site, 1).await;
    store
        .report(
            &w.site,
            &[
                status("r1", 0, 1, "running"),
                status("s1", 0, 1, "succeeded"),
            ],
            &[],
            T0 + 2,
        )
        .await
        .unwrap();
    store
        .cancel("c1", None, &audit(&w.tenant, "job.cancel", "c1"))
        .await
        .unwrap();
    assert_eq!(
        store.job_states().await.unwrap(),
        [
            (JobState::Pending, 2),
            (JobState::Running, 1),
            (JobState::Succeeded, 1),
            (JobState::Cancelled, 1)
        ]
    );
});

contract!(cancel_unfinished_tasks, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 4, 1, 2)).await;
    place(&*store, "j1", &w.pool, &w.site, 3).await;
    let (outcomes, _) = store
        .report(
            &w.site,
            &[
                status("j1", 0, 1, "succeeded"),
                status("j1", 1, 1, "running"),
            ],
            &[],
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [ItemOutcome::Accepted, ItemOutcome::Accepted]);
    let version = store.site_version(&w.site).await.unwrap();

    let key = idem(&w.tenant, "cancel-1", "hc", r#"{"cancelled":true}"#);
    let outcome = store
        .cancel("j1", Some(&key), &audit(&w.tenant, "job.cancel", "j1"))
        .await
        .unwrap();
    assert_eq!(outcome, IdemOutcome::Done);
    assert_eq!(
        task_states(&*store, "j1").await,
        strings(&["succeeded", "cancelled", "cancelled", "cancelled"])
    );
    let row = store.job("j1").await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Cancelled);
    assert!(row.cancel_requested);
    assert_eq!(row.why, None);
    // The site learns: its version moved and the tasks are gone.
    let (after, assigned) = store.assignments(&w.site).await.unwrap();
    assert!(after > version);
    assert!(assigned.is_empty());
    assert_eq!(store.pools(&w.site).await.unwrap()[0].used, 0);
    // Nothing left to schedule.
    assert!(store.round_input().await.unwrap().jobs.is_empty());
    let kinds: Vec<String> = store
        .events("j1", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("cancelled"));

    // A retry of the cancel replays; another body under the key is a mismatch.
    let replay = store
        .cancel("j1", Some(&key), &audit(&w.tenant, "job.cancel", "j1"))
        .await
        .unwrap();
    assert_eq!(
        replay,
        IdemOutcome::Replay {
            status: 201,
            body: r#"{"cancelled":true}"#.into()
        }
    );
    let other = idem(&w.tenant, "cancel-1", "another", "x");
    assert_eq!(
        store
            .cancel("j1", Some(&other), &audit(&w.tenant, "job.cancel", "j1"))
            .await
            .unwrap(),
        IdemOutcome::Mismatch
    );
    // Without a key, cancelling again is harmless.
    assert_eq!(
        store
            .cancel("j1", None, &audit(&w.tenant, "job.cancel", "j1"))
            .await
            .unwrap(),
        IdemOutcome::Done
    );
    assert_eq!(job_state(&*store, "j1").await, "cancelled");

    // A late report from the site is rejected; the cancel stands.
    let (outcomes, _) = store
        .report(&w.site, &[status("j1", 1, 1, "succeeded")], &[], T0 + 3)
        .await
        .unwrap();
    assert!(
        matches!(outcomes[0], ItemOutcome::Rejected(_)),
        "{outcomes:?}"
    );
    assert_eq!(task_states(&*store, "j1").await[1], "cancelled");

    // A round planned before the cancel places nothing.
    store
        .apply_round(&RoundWrite {
            placements: vec![placed("j1".into(), w.pool.clone(), w.site.clone(), 1)],
            whys: Vec::new(),
            prices: Vec::new(),
            holds: vec![],
            at_ms: T0 + 4,
        })
        .await
        .unwrap();
    assert_eq!(
        task_states(&*store, "j1").await,
        strings(&["succeeded", "cancelled", "cancelled", "cancelled"])
    );
    assert_eq!(job_state(&*store, "j1").await, "cancelled");
});

contract!(cancel_unknown_or_finished_job, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    let outcome = store
        .cancel(
            "no-such-job",
            None,
            &audit(&w.tenant, "job.cancel", "no-such-job"),
        )
        .await;
    assert!(
        matches!(outcome, Err(StoreError::NotFound(_))),
        "{outcome:?}"
    );
    assert!(store.events("no-such-job", 0, 10).await.unwrap().is_empty());

    // A finished job stays what it was: cancelling it changes nothing.
    submit(&*store, job("done", &w.tenant, 1, 1, 0)).await;
    place(&*store, "done", &w.pool, &w.site, 1).await;
    store
        .report(&w.site, &[status("done", 0, 1, "succeeded")], &[], T0 + 2)
        .await
        .unwrap();
    assert_eq!(job_state(&*store, "done").await, "succeeded");
    assert_eq!(
        store
            .cancel("done", None, &audit(&w.tenant, "job.cancel", "done"))
            .await
            .unwrap(),
        IdemOutcome::Done
    );
    assert_eq!(job_state(&*store, "done").await, "succeeded");
    assert_eq!(task_states(&*store, "done").await, strings(&["succeeded"]));
});
