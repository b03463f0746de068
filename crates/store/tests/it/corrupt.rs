//! A stored value outside its domain (a state no enum names, an integer out
//! of range) is `StoreError::Corrupt` naming the table, column and row,
//! never a default.

use suanwang_store::{IdemOutcome, StoreError};

use crate::harness::*;

fn corrupt(error: StoreError) -> String {
    match error {
        StoreError::Corrupt(text) => text,
        other => panic!("not corrupt: {other:?}"),
    }
}

contract!(unknown_names_are_corrupt, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j-1", &w.tenant, 4, 1, 0)).await;
    place(&*store, "j-1", &w.pool, &w.site, 4).await;

    db.raw("UPDATE tasks SET state = 'bogus' WHERE job = 'j-1' AND idx = 3")
        .await;
    let error = store.tasks("j-1", None, 10).await.unwrap_err();
    assert_eq!(
        corrupt(error),
        r#"tasks.state of job j-1 task 3 is "bogus""#
    );

    // A job's counts read its tasks' states too.
    let error = store.job("j-1").await.unwrap_err();
    assert_eq!(corrupt(error), r#"tasks.state of job j-1 is "bogus""#);
    db.raw("UPDATE tasks SET state = 'placed' WHERE job = 'j-1' AND idx = 3")
        .await;

    db.raw("UPDATE jobs SET state = 'weird' WHERE id = 'j-1'")
        .await;
    let error = store.job("j-1").await.unwrap_err();
    assert_eq!(corrupt(error), r#"jobs.state of job j-1 is "weird""#);
    assert!(store.job_states().await.is_err());

    db.raw("UPDATE events SET kind = 'odd' WHERE job = 'j-1'")
        .await;
    let error = store.events("j-1", 0, 10).await.unwrap_err();
    assert!(
        corrupt(error).starts_with("events.kind of event "),
        "names the event"
    );
});

contract!(out_of_range_integers_are_corrupt, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j-1", &w.tenant, 2, 1, 0)).await;
    place(&*store, "j-1", &w.pool, &w.site, 2).await;

    db.raw("UPDATE tasks SET exit_code = 4294967296 WHERE job = 'j-1' AND idx = 0")
        .await;
    let error = store.tasks("j-1", None, 10).await.unwrap_err();
    assert_eq!(
        corrupt(error),
        "tasks.exit_code of job j-1 task 0 is 4294967296, out of range for i32"
    );

    db.raw("UPDATE tasks SET exit_code = NULL, attempt = -1 WHERE job = 'j-1' AND idx = 1")
        .await;
    let error = store
        .report(&w.site, &[status("j-1", 1, 1, "running")], &[], T0 + 2)
        .await
        .unwrap_err();
    assert_eq!(
        corrupt(error),
        "tasks.attempt of job j-1 task 1 is -1, out of range for u32"
    );

    let keyed = with_idem(job("j-2", &w.tenant, 1, 1, 0), "k", "h");
    assert_eq!(submit(&*store, keyed).await, IdemOutcome::Done);
    db.raw("UPDATE idempotency SET status = 70000").await;
    let error = store.idempotent(&w.tenant, "k").await.unwrap_err();
    assert_eq!(
        corrupt(error),
        format!(
            r#"idempotency.status of key "k" of principal {} is 70000, out of range for u16"#,
            w.tenant
        )
    );
    // A replay of that key says so too, rather than answering 500.
    let again = with_idem(job("j-3", &w.tenant, 1, 1, 0), "k", "h");
    assert!(matches!(
        store.submit_batch(&[again]).await,
        Err(StoreError::Corrupt(_))
    ));

    db.raw("UPDATE sites SET healthy = 2").await;
    let error = store.site(&w.site).await.unwrap_err();
    assert_eq!(
        corrupt(error),
        format!("sites.healthy of site {} is 2, not 0 or 1", w.site)
    );
});
