//! Scheduling rounds and assignments.

use suanwang_core::lifecycle::{EventKind, JobState, TaskState};
use suanwang_store::{AssignmentRow, RoundPoolRow, RoundWrite, WaitingJob};

use crate::harness::*;

contract!(round_places_pending_tasks, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 6, 2, 1)).await;
    submit(&*store, job("j2", &w.tenant, 2, 1, 0)).await;

    let input = store.round_input().await.unwrap();
    assert_eq!(input.pools.len(), 1);
    let RoundPoolRow {
        pool: pool_row,
        region,
        last_price,
    } = &input.pools[0];
    assert_eq!(*last_price, None, "never offered in a round");
    assert_eq!(
        (pool_row.id.as_str(), region.as_str()),
        (w.pool.as_str(), "r1")
    );
    assert_eq!((pool_row.capacity, pool_row.used), (16, 0));
    // The site's name, so the round can name the pool `gz1/main`.
    assert_eq!(pool_row.name, "main");
    assert_eq!(
        input.site_names,
        std::collections::BTreeMap::from([(w.site.clone(), "gz1".to_owned())])
    );
    assert_eq!(
        input.jobs,
        [
            WaitingJob {
                id: "j1".into(),
                tenant: w.tenant.clone(),
                spec: r#"{"job":"j1"}"#.into(),
                pending: 6,
                live: 6
            },
            WaitingJob {
                id: "j2".into(),
                tenant: w.tenant.clone(),
                spec: r#"{"job":"j2"}"#.into(),
                pending: 2,
                live: 2
            },
        ]
    );

    let version = store.site_version(&w.site).await.unwrap();
    store
        .apply_round(&RoundWrite {
            placements: vec![placed("j1".into(), w.pool.clone(), w.site.clone(), 4)],
            whys: vec![
                ("j1".into(), Some("2 tasks: capacity taken".into())),
                ("j2".into(), Some("bid below the market price".into())),
            ],
            prices: Vec::new(),
            holds: vec![],
            at_ms: T0 + 100,
        })
        .await
        .unwrap();

    let tasks = store.tasks("j1", None, 1_000).await.unwrap();
    for task in &tasks[..4] {
        assert_eq!(task.state, TaskState::Placed);
        assert_eq!(task.attempt, 1);
        assert_eq!(task.pool.as_deref(), Some(w.pool.as_str()));
        assert_eq!(task.site.as_deref(), Some(w.site.as_str()));
    }
    for task in &tasks[4..] {
        assert_eq!(
            (task.state.as_str(), task.attempt, task.pool.as_deref()),
            ("pending", 0, None)
        );
    }
    let j1 = store.job("j1").await.unwrap().unwrap();
    assert_eq!(j1.state, JobState::Placed);
    assert_eq!(j1.why.as_deref(), Some("2 tasks: capacity taken"));
    assert_eq!(j1.counts, [(TaskState::Pending, 2), (TaskState::Placed, 4)]);
    let j2 = store.job("j2").await.unwrap().unwrap();
    assert_eq!(j2.state, JobState::Pending);
    assert_eq!(j2.why.as_deref(), Some("bid below the market price"));
    assert_eq!(store.site_version(&w.site).await.unwrap(), version + 1);
    let placed_events: Vec<_> = store
        .events("j1", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Placed)
        .collect();
    assert_eq!(placed_events.len(), 1);
    assert_eq!(placed_events[0].at_ms, T0 + 100);

    // The next round sees the units in use and what still waits.
    let input = store.round_input().await.unwrap();
    assert_eq!(input.pools[0].pool.used, 8);
    let waiting: Vec<(&str, u64, u64)> = input
        .jobs
        .iter()
        .map(|j| (j.id.as_str(), j.pending, j.live))
        .collect();
    assert_eq!(waiting, [("j1", 2, 6), ("j2", 2, 2)]);
    assert_eq!(store.pools(&w.site).await.unwrap()[0].used, 8);

    // Placing the rest (asking for more than wait places what waits) and
    // clearing the explanations.
    store
        .apply_round(&RoundWrite {
            placements: vec![
                placed("j1".into(), w.pool.clone(), w.site.clone(), 5),
                placed("j2".into(), w.pool.clone(), w.site.clone(), 1),
            ],
            whys: vec![
                ("j1".into(), None),
                ("j2".into(), Some("1 task waits".into())),
            ],
            prices: Vec::new(),
            holds: vec![],
            at_ms: T0 + 200,
        })
        .await
        .unwrap();
    let j1 = store.job("j1").await.unwrap().unwrap();
    assert_eq!(j1.why, None);
    assert_eq!(j1.counts, [(TaskState::Placed, 6)]);
    let j2 = store.job("j2").await.unwrap().unwrap();
    assert_eq!(j2.state, JobState::Placed);
    assert_eq!(j2.why.as_deref(), Some("1 task waits"));
    assert_eq!(store.site_version(&w.site).await.unwrap(), version + 2);
    let input = store.round_input().await.unwrap();
    let waiting: Vec<(&str, u64, u64)> = input
        .jobs
        .iter()
        .map(|j| (j.id.as_str(), j.pending, j.live))
        .collect();
    assert_eq!(waiting, [("j2", 1, 2)]);
    assert_eq!(input.pools[0].pool.used, 13);

    // An empty round changes nothing.
    store.apply_round(&RoundWrite::default()).await.unwrap();
    assert_eq!(store.site_version(&w.site).await.unwrap(), version + 2);
});

contract!(assignments_for_a_site, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    let other = site(&*store, &w.provider, "other", "r2").await;
    let other_pool = pool(&other, "x", 4);
    store
        .put_pools(
            &other,
            std::slice::from_ref(&other_pool),
            &audit(&other, "pools.put", &other),
        )
        .await
        .unwrap();
    store
        .heartbeat(&other, T0 + 60_000, &Default::default())
        .await
        .unwrap();
    submit(&*store, job("j1", &w.tenant, 3, 2, 0)).await;

    assert_eq!(
        store.assignments(&w.site).await.unwrap(),
        (store.site_version(&w.site).await.unwrap(), vec![])
    );
    store
        .apply_round(&RoundWrite {
            placements: vec![
                placed("j1".into(), w.pool.clone(), w.site.clone(), 2),
                placed("j1".into(), other_pool.id.clone(), other.clone(), 1),
            ],
            whys: vec![],
            prices: Vec::new(),
            holds: vec![],
            at_ms: T0 + 1,
        })
        .await
        .unwrap();
    let (version, mine) = store.assignments(&w.site).await.unwrap();
    assert_eq!(version, store.site_version(&w.site).await.unwrap());
    let expect = |task: u64, state: TaskState| AssignmentRow {
        job: "j1".into(),
        task,
        attempt: 1,
        pool: w.pool.clone(),
        state,
        units: 2,
        spec: r#"{"job":"j1"}"#.into(),
    };
    assert_eq!(
        mine,
        [expect(0, TaskState::Placed), expect(1, TaskState::Placed)]
    );
    let (_, theirs) = store.assignments(&other).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(
        (theirs[0].task, theirs[0].pool.as_str()),
        (2, other_pool.id.as_str())
    );

    // Running tasks stay assigned; finished ones drop out.
    store
        .report(
            &w.site,
            &[
                status("j1", 0, 1, "running"),
                status("j1", 1, 1, "succeeded"),
            ],
            &[],
            T0 + 2,
        )
        .await
        .unwrap();
    let (_, mine) = store.assignments(&w.site).await.unwrap();
    assert_eq!(mine, [expect(0, TaskState::Running)]);
    assert!(store.assignments("site-none").await.is_err());
});

// Task rows are created when a task is first placed (lazy task rows): a
// task that went back to pending is placed again before never-placed ones,
// every reader sees all tasks, and a cancel covers the never-placed ones.
contract!(never_placed_tasks_are_tasks_like_any_other, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j", &w.tenant, 5, 1, 1)).await;
    place(&*store, "j", &w.pool, &w.site, 2).await;
    let waiting = |input: suanwang_store::RoundInput| {
        input
            .jobs
            .iter()
            .map(|j| (j.id.clone(), j.pending, j.live))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        waiting(store.round_input().await.unwrap()),
        [("j".to_owned(), 3, 5)]
    );
    assert_eq!(
        task_states(&*store, "j").await,
        strings(&["placed", "placed", "pending", "pending", "pending"])
    );

    // Task 0 fails with a retry left: pending again, below the others.
    let mut failed = status("j", 0, 1, "failed");
    failed.exit_code = Some(1);
    let (outcomes, _) = store
        .report(&w.site, &[failed], &[], T0 + 10)
        .await
        .unwrap();
    assert_eq!(outcomes, [suanwang_store::ItemOutcome::Accepted]);
    assert_eq!(
        waiting(store.round_input().await.unwrap()),
        [("j".to_owned(), 4, 5)]
    );
    place(&*store, "j", &w.pool, &w.site, 2).await;
    let tasks = store.tasks("j", None, 1_000).await.unwrap();
    let summary: Vec<(u64, &str, u32)> = tasks
        .iter()
        .map(|t| (t.index, t.state.as_str(), t.attempt))
        .collect();
    assert_eq!(
        summary,
        [
            (0, "placed", 2),
            (1, "placed", 1),
            (2, "placed", 1),
            (3, "pending", 0),
            (4, "pending", 0)
        ]
    );
    let (_, assigned) = store.assignments(&w.site).await.unwrap();
    let assigned: Vec<(u64, u32)> = assigned.iter().map(|a| (a.task, a.attempt)).collect();
    assert_eq!(assigned, [(0, 2), (1, 1), (2, 1)]);
    let j = store.job("j").await.unwrap().unwrap();
    assert_eq!(j.counts, [(TaskState::Pending, 2), (TaskState::Placed, 3)]);

    // A report about a task that was never placed is not current.
    let (outcomes, _) = store
        .report(&w.site, &[status("j", 4, 1, "running")], &[], T0 + 20)
        .await
        .unwrap();
    assert!(matches!(
        outcomes[0],
        suanwang_store::ItemOutcome::Rejected(_)
    ));

    // Cancel: every task, placed or never placed, is cancelled.
    store
        .cancel("j", None, &audit(&w.tenant, "job.cancel", "j"))
        .await
        .unwrap();
    assert_eq!(task_states(&*store, "j").await, strings(&["cancelled"; 5]));
    let j = store.job("j").await.unwrap().unwrap();
    assert_eq!(
        (j.state.as_str(), j.counts.clone()),
        ("cancelled", vec![(TaskState::Cancelled, 5)])
    );
    assert!(waiting(store.round_input().await.unwrap()).is_empty());
    // A round planned before the cancel places nothing.
    place(&*store, "j", &w.pool, &w.site, 2).await;
    assert_eq!(task_states(&*store, "j").await, strings(&["cancelled"; 5]));
    assert!(store.assignments(&w.site).await.unwrap().1.is_empty());
});
