//! Pages of a job's tasks (never-placed tail included), usage records and
//! events: every page in order, nothing twice, nothing left out, and the
//! names of sites and pools beside their ids.

use suanwang_store::prelude::*;
use suanwang_store::{TaskRow, UsageKey, UsageRow};

use crate::harness::*;

/// Every task of `job`, `limit` at a time: the pages' index lists.
async fn task_pages(store: &dyn Store, job: &str, limit: u32) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page: Vec<TaskRow> = store.tasks(job, after, limit).await.unwrap();
        if page.is_empty() {
            return pages;
        }
        after = page.last().map(|t| t.index);
        pages.push(page.iter().map(|t| t.index).collect());
    }
}

async fn usage_pages(store: &dyn Store, job: &str, limit: u32) -> Vec<Vec<UsageRow>> {
    let mut pages = Vec::new();
    let mut after: Option<UsageKey> = None;
    loop {
        let page = store.usage(job, after.as_ref(), limit).await.unwrap();
        if page.is_empty() {
            return pages;
        }
        after = page.last().map(|u| UsageKey {
            task: u.task,
            attempt: u.attempt,
            seq: u.seq,
            site: u.site.clone(),
        });
        pages.push(page);
    }
}

contract!(tasks_page_through_rows_and_the_never_placed_tail, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 7, 1, 0)).await;
    // Tasks 0 to 2 get rows; 3 to 6 have none (never placed).
    place(&*store, "j1", &w.pool, &w.site, 3).await;

    assert_eq!(
        task_pages(&*store, "j1", 2).await,
        [vec![0, 1], vec![2, 3], vec![4, 5], vec![6]]
    );
    assert_eq!(
        task_pages(&*store, "j1", 3).await,
        [vec![0, 1, 2], vec![3, 4, 5], vec![6]]
    );
    assert_eq!(
        task_pages(&*store, "j1", 1_000).await,
        [(0..7).collect::<Vec<_>>()]
    );
    // A page that starts inside the tail, and past the end.
    let tail = store.tasks("j1", Some(3), 2).await.unwrap();
    assert_eq!(tail, [TaskRow::never_placed(4), TaskRow::never_placed(5)]);
    assert!(store.tasks("j1", Some(6), 10).await.unwrap().is_empty());
    assert!(store
        .tasks("j1", Some(u64::MAX), 10)
        .await
        .unwrap()
        .is_empty());

    // Placed tasks carry their site's name and region and their pool's name.
    let all = store.tasks("j1", None, 1_000).await.unwrap();
    for task in &all[..3] {
        assert_eq!(task.site.as_deref(), Some(w.site.as_str()));
        assert_eq!(task.pool.as_deref(), Some(w.pool.as_str()));
        assert_eq!(
            (
                task.site_name.as_deref(),
                task.site_region.as_deref(),
                task.pool_name.as_deref()
            ),
            (Some("gz1"), Some("r1"), Some("main"))
        );
    }
    assert_eq!(all[3], TaskRow::never_placed(3));
});

contract!(usage_pages_follow_the_key_order, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 3, 1, 0)).await;
    place(&*store, "j1", &w.pool, &w.site, 3).await;
    // Reported out of order: pages come in (task, attempt, seq, site) order.
    let records: Vec<_> = [(2, 1), (0, 0), (1, 1), (0, 1), (2, 0), (1, 0)]
        .into_iter()
        .map(|(task, seq)| usage("j1", task, 1, seq, &w.pool))
        .collect();
    // Two minutes of records per attempt: reported a minute after the
    // placement, within the window and its minute of slack.
    store
        .report(&w.site, &[], &records, T0 + 61_000)
        .await
        .unwrap();

    let pages = usage_pages(&*store, "j1", 4).await;
    let keys: Vec<Vec<(u64, u32)>> = pages
        .iter()
        .map(|page| page.iter().map(|u| (u.task, u.seq)).collect())
        .collect();
    assert_eq!(
        keys,
        [vec![(0, 0), (0, 1), (1, 0), (1, 1)], vec![(2, 0), (2, 1)]]
    );
    let one_by_one = usage_pages(&*store, "j1", 1).await;
    assert_eq!(one_by_one.len(), 6);
    assert_eq!(
        one_by_one.concat(),
        pages.concat(),
        "pages of one are the same records"
    );
    for record in pages.concat() {
        assert_eq!(
            (
                record.site_name.as_str(),
                record.site_region.as_str(),
                record.pool_name.as_str()
            ),
            ("gz1", "r1", "main")
        );
    }
    assert!(store.usage("nope", None, 10).await.unwrap().is_empty());
});

contract!(events_page_by_seq, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 3, 1, 0)).await;
    // One event for the submission, one per round that places.
    for _ in 0..3 {
        place(&*store, "j1", &w.pool, &w.site, 1).await;
    }
    let all = store.events("j1", 0, 1_000).await.unwrap();
    assert_eq!(all.len(), 4, "{all:?}");
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events("j1", after, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);
});
