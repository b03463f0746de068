//! The rules of each job kind. A gang runs whole or not at all: when one
//! member fails with a retry left or loses its site, its live peers go back
//! to pending with it, so the round can place the whole gang again; when one
//! ends for good, its peers are cancelled. A service's replica that ends is
//! started again while retries are left.

use suanwang_core::lifecycle::{EventKind, TaskState};
use suanwang_store::ItemOutcome;

use crate::harness::*;

contract!(a_failed_member_takes_its_gang_back_to_pending, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, gang("g", &w.tenant, 3, 1)).await;
    place(&*store, "g", &w.pool, &w.site, 3).await;
    let running: Vec<_> = (0..3).map(|i| status("g", i, 1, "running")).collect();
    store.report(&w.site, &running, &[], T0 + 2).await.unwrap();
    let version = store.site_version(&w.site).await.unwrap();

    let (outcomes, _) = store
        .report(&w.site, &[status("g", 1, 1, "failed")], &[], T0 + 3)
        .await
        .unwrap();
    assert_eq!(outcomes, [ItemOutcome::Accepted]);
    assert_eq!(task_states(&*store, "g").await, strings(&["pending"; 3]));
    assert_eq!(job_state(&*store, "g").await, "pending");
    // The site's agent learns that its other attempts are gone.
    assert!(store.site_version(&w.site).await.unwrap() > version);
    assert!(store.assignments(&w.site).await.unwrap().1.is_empty());
    let gang_events = store
        .events("g", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Gang)
        .map(|e| e.task)
        .collect::<Vec<_>>();
    assert_eq!(gang_events, [Some(0), Some(2)]);
    // The whole gang waits for the round, and is placed again together.
    let input = store.round_input().await.unwrap();
    let waiting: Vec<(&str, u64, u64)> = input
        .jobs
        .iter()
        .map(|j| (j.id.as_str(), j.pending, j.live))
        .collect();
    assert_eq!(waiting, [("g", 3, 3)]);
    place(&*store, "g", &w.pool, &w.site, 3).await;
    let attempts: Vec<(TaskState, u32)> = store
        .tasks("g", None, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.state, t.attempt))
        .collect();
    assert_eq!(attempts, vec![(TaskState::Placed, 2); 3]);

    // A report from an attempt the gang ended is stale, not an error.
    let (late, _) = store
        .report(&w.site, &[status("g", 0, 1, "succeeded")], &[], T0 + 4)
        .await
        .unwrap();
    assert!(matches!(late[0], ItemOutcome::Rejected(_)), "{late:?}");

    // The last retry fails: the peers are cancelled, the job has failed.
    let (outcomes, _) = store
        .report(&w.site, &[status("g", 2, 2, "failed")], &[], T0 + 5)
        .await
        .unwrap();
    assert_eq!(outcomes, [ItemOutcome::Accepted]);
    assert_eq!(
        task_states(&*store, "g").await,
        strings(&["cancelled", "cancelled", "failed"])
    );
    assert_eq!(job_state(&*store, "g").await, "failed");
});

contract!(a_lost_member_takes_its_gang_back_to_pending, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    // A second site whose lease lapses; the gang spans both (a test of the
    // store alone: the engine places a gang in one pool).
    let other = site(&*store, &w.provider, "gz2", "r1").await;
    let other_pool = pool(&other, "main", 16);
    store
        .put_pools(
            &other,
            std::slice::from_ref(&other_pool),
            &audit(&other, "pools.put", &other),
        )
        .await
        .unwrap();
    store
        .heartbeat(&other, T0 + 1_000, &Default::default())
        .await
        .unwrap();
    submit(&*store, gang("g", &w.tenant, 2, 2)).await;
    submit(&*store, job("b", &w.tenant, 2, 1, 2)).await;
    for job in ["g", "b"] {
        place(&*store, job, &w.pool, &w.site, 1).await;
        place(&*store, job, &other_pool.id, &other, 1).await;
    }
    let version = store.site_version(&w.site).await.unwrap();

    assert_eq!(store.expire_leases(T0 + 2_000).await.unwrap(), 2);
    assert_eq!(
        task_states(&*store, "g").await,
        strings(&["pending", "pending"])
    );
    // A batch job's tasks are independent: only the lost one waits again.
    assert_eq!(
        task_states(&*store, "b").await,
        strings(&["placed", "pending"])
    );
    assert!(store.site_version(&w.site).await.unwrap() > version);
    let (_, assigned) = store.assignments(&w.site).await.unwrap();
    let assigned: Vec<(&str, u64)> = assigned.iter().map(|a| (a.job.as_str(), a.task)).collect();
    assert_eq!(assigned, [("b", 0)]);
});

// A service's replicas stay up: one that ends by itself waits to be placed
// again (a new attempt) while retries are left; a resent end is a
// duplicate; with none left it has succeeded.
contract!(a_service_replica_that_ends_starts_again, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, service("s", &w.tenant, 2, 1)).await;
    place(&*store, "s", &w.pool, &w.site, 2).await;
    let ended = status("s", 0, 1, "succeeded");
    let (outcomes, _) = store
        .report(&w.site, std::slice::from_ref(&ended), &[], T0 + 2)
        .await
        .unwrap();
    assert_eq!(outcomes, [ItemOutcome::Accepted]);
    assert_eq!(
        task_states(&*store, "s").await,
        strings(&["pending", "placed"])
    );
    let (again, _) = store.report(&w.site, &[ended], &[], T0 + 3).await.unwrap();
    assert_eq!(again, [ItemOutcome::Duplicate]);
    assert_ne!(job_state(&*store, "s").await, "succeeded");

    place(&*store, "s", &w.pool, &w.site, 1).await;
    let (outcomes, _) = store
        .report(&w.site, &[status("s", 0, 2, "succeeded")], &[], T0 + 4)
        .await
        .unwrap();
    assert_eq!(outcomes, [ItemOutcome::Accepted]);
    assert_eq!(
        task_states(&*store, "s").await,
        strings(&["succeeded", "placed"])
    );
    // A batch job's task that succeeds is done at once.
    submit(&*store, job("b", &w.tenant, 1, 1, 1)).await;
    place(&*store, "b", &w.pool, &w.site, 1).await;
    store
        .report(&w.site, &[status("b", 0, 1, "succeeded")], &[], T0 + 5)
        .await
        .unwrap();
    assert_eq!(task_states(&*store, "b").await, strings(&["succeeded"]));
});
