//! Site leases: heartbeats, lapses, and extension by a new leader.

use suanwang_core::lifecycle::{EventKind, TaskState};
use suanwang_store::ItemOutcome;

use crate::harness::*;

contract!(lapsed_lease_loses_tasks, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    let hub = w.provider.clone();
    let steady = site(&*store, &hub, "steady", "r2").await;
    let steady_pool = pool(&steady, "s", 8);
    store
        .put_pools(
            &steady,
            std::slice::from_ref(&steady_pool),
            &audit(&steady, "pools.put", &steady),
        )
        .await
        .unwrap();
    store
        .heartbeat(&w.site, T0 + 10_000, &Default::default())
        .await
        .unwrap();
    store
        .heartbeat(&steady, T0 + 30_000, &Default::default())
        .await
        .unwrap();

    submit(&*store, job("retry", &w.tenant, 2, 1, 1)).await;
    submit(&*store, job("once", &w.tenant, 1, 1, 0)).await;
    submit(&*store, job("safe", &w.tenant, 1, 1, 0)).await;
    place(&*store, "retry", &w.pool, &w.site, 2).await;
    place(&*store, "once", &w.pool, &w.site, 1).await;
    place(&*store, "safe", &steady_pool.id, &steady, 1).await;
    store
        .report(&w.site, &[status("retry", 0, 1, "running")], &[], T0 + 1)
        .await
        .unwrap();
    let version = store.site_version(&w.site).await.unwrap();
    let steady_version = store.site_version(&steady).await.unwrap();

    // Nothing lapsed yet.
    assert_eq!(store.expire_leases(T0 + 9_000).await.unwrap(), 0);
    assert!(store.site(&w.site).await.unwrap().unwrap().healthy);

    assert_eq!(store.expire_leases(T0 + 20_000).await.unwrap(), 3);
    let lapsed = store.site(&w.site).await.unwrap().unwrap();
    assert!(!lapsed.healthy);
    assert!(lapsed.version > version);
    assert!(store.site(&steady).await.unwrap().unwrap().healthy);
    assert_eq!(store.site_version(&steady).await.unwrap(), steady_version);

    // With a retry left, back to pending (same attempt); without, lost.
    let tasks = store.tasks("retry", None, 1_000).await.unwrap();
    for task in &tasks {
        assert_eq!((task.state.as_str(), task.attempt), ("pending", 1));
        assert!(task.reason.is_some());
    }
    assert_eq!(job_state(&*store, "retry").await, "pending");
    assert_eq!(task_states(&*store, "once").await, strings(&["lost"]));
    assert_eq!(job_state(&*store, "once").await, "failed");
    assert_eq!(task_states(&*store, "safe").await, strings(&["placed"]));
    let lost: Vec<Option<u64>> = store
        .events("retry", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Lost)
        .map(|e| e.task)
        .collect();
    assert_eq!(lost, [Some(0), Some(1)]);
    assert!(store
        .events("once", 0, 100)
        .await
        .unwrap()
        .iter()
        .any(|e| e.kind == EventKind::Lost && e.task == Some(0)));

    // The lapsed site is no longer offered, and its tasks wait again.
    let input = store.round_input().await.unwrap();
    assert!(input.pools.iter().all(|p| p.pool.site == steady));
    let waiting: Vec<(&str, u64)> = input
        .jobs
        .iter()
        .map(|j| (j.id.as_str(), j.pending))
        .collect();
    assert_eq!(waiting, [("retry", 2)]);
    assert!(store.assignments(&w.site).await.unwrap().1.is_empty());

    // Its late reports are rejected.
    let (s, u) = store
        .report(
            &w.site,
            &[status("retry", 0, 1, "succeeded")],
            &[usage("once", 0, 1, 0, &w.pool)],
            T0 + 21_000,
        )
        .await
        .unwrap();
    assert!(matches!(s[0], ItemOutcome::Rejected(_)), "{s:?}");
    // Usage of the lost attempt is still that attempt's: accepted.
    assert_eq!(u, [ItemOutcome::Accepted]);

    // Placed elsewhere, attempt 2.
    place(&*store, "retry", &steady_pool.id, &steady, 2).await;
    let tasks = store.tasks("retry", None, 1_000).await.unwrap();
    assert!(tasks.iter().all(|t| t.state == TaskState::Placed
        && t.attempt == 2
        && t.site.as_deref() == Some(steady.as_str())));

    // Lapsing again is a no-op; a heartbeat brings the site back.
    assert_eq!(store.expire_leases(T0 + 20_000).await.unwrap(), 0);
    store
        .heartbeat(&w.site, T0 + 50_000, &Default::default())
        .await
        .unwrap();
    let back = store.site(&w.site).await.unwrap().unwrap();
    assert!(back.healthy);
    assert_eq!(back.lease_expires_at_ms, Some(T0 + 50_000));
    assert!(store
        .round_input()
        .await
        .unwrap()
        .pools
        .iter()
        .any(|p| p.pool.site == w.site));
});

contract!(extend_leases_spares_sites, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    let hub = w.provider.clone();
    let late = site(&*store, &hub, "late", "r2").await;
    let never = site(&*store, &hub, "never", "r3").await;
    store
        .heartbeat(&w.site, T0 + 10_000, &Default::default())
        .await
        .unwrap();
    store
        .heartbeat(&late, T0 + 50_000, &Default::default())
        .await
        .unwrap();

    store.extend_leases(T0 + 40_000).await.unwrap();
    assert_eq!(
        store
            .site(&w.site)
            .await
            .unwrap()
            .unwrap()
            .lease_expires_at_ms,
        Some(T0 + 40_000)
    );
    assert_eq!(
        store
            .site(&late)
            .await
            .unwrap()
            .unwrap()
            .lease_expires_at_ms,
        Some(T0 + 50_000)
    );
    let never_row = store.site(&never).await.unwrap().unwrap();
    assert_eq!(
        (never_row.lease_expires_at_ms, never_row.healthy),
        (None, false)
    );

    assert_eq!(store.expire_leases(T0 + 30_000).await.unwrap(), 0);
    assert!(store.site(&w.site).await.unwrap().unwrap().healthy);
    // An unhealthy site's lease is not extended.
    store.expire_leases(T0 + 45_000).await.unwrap();
    assert!(!store.site(&w.site).await.unwrap().unwrap().healthy);
    store.extend_leases(T0 + 100_000).await.unwrap();
    let row = store.site(&w.site).await.unwrap().unwrap();
    assert_eq!(
        (row.healthy, row.lease_expires_at_ms),
        (false, Some(T0 + 40_000))
    );
    assert_eq!(
        store
            .site(&late)
            .await
            .unwrap()
            .unwrap()
            .lease_expires_at_ms,
        Some(T0 + 100_000)
    );
});
