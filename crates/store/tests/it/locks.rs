//! Writers that touch many jobs at once (rounds, multi-job reports,
//! cancels, lease lapses) lock jobs in one order, so running them all at
//! once never ends in a deadlock abort: every call succeeds (no retry here;
//! the handlers' bounded retry is for the unforeseen).

use std::sync::Arc;

use suanwang_core::lifecycle::{JobState, TaskState};
use suanwang_store::{RoundWrite, StatusIn};

use crate::harness::*;

const JOBS: usize = 24;
const TASKS: u64 = 6;

contract!(many_job_writers_never_deadlock, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    let ids: Vec<String> = (0..JOBS).map(|i| format!("j{i:02}")).collect();
    for id in &ids {
        submit(&*store, job(id, &w.tenant, TASKS, 1, 0)).await;
    }
    // Two tasks of each job placed, so reports have something to act on.
    store
        .apply_round(&RoundWrite {
            placements: ids
                .iter()
                .map(|id| placed(id.clone(), w.pool.clone(), w.site.clone(), 2))
                .collect(),
            whys: Vec::new(),
            prices: Vec::new(),
            holds: vec![],
            at_ms: T0 + 1,
        })
        .await
        .unwrap();

    let rounds = {
        let (store, ids, w_pool, w_site) = (
            Arc::clone(&store),
            ids.clone(),
            w.pool.clone(),
            w.site.clone(),
        );
        tokio::spawn(async move {
            for i in 0..4u64 {
                // Placements in descending job order; the store sorts.
                let placements = ids
                    .iter()
                    .rev()
                    .map(|id| placed(id.clone(), w_pool.clone(), w_site.clone(), 1))
                    .collect();
                let whys = ids
                    .iter()
                    .map(|id| (id.clone(), Some(format!("round {i}"))))
                    .collect();
                store
                    .apply_round(&RoundWrite {
                        placements,
                        whys,
                        prices: Vec::new(),
                        holds: vec![],
                        at_ms: T0 + 10 + i as i64,
                    })
                    .await
                    .expect("round");
            }
        })
    };
    let reports = {
        let (store, ids, site) = (Arc::clone(&store), ids.clone(), w.site.clone());
        tokio::spawn(async move {
            for task in 0..2u64 {
                // One report covering every job, in descending order.
                let statuses: Vec<StatusIn> = ids
                    .iter()
                    .rev()
                    .map(|id| status(id, task, 1, "running"))
                    .collect();
                store
                    .report(&site, &statuses, &[], T0 + 20)
                    .await
                    .expect("report");
                let statuses: Vec<StatusIn> = ids
                    .iter()
                    .map(|id| status(id, task, 1, "succeeded"))
                    .collect();
                store
                    .report(&site, &statuses, &[], T0 + 21)
                    .await
                    .expect("report");
            }
        })
    };
    let cancels = {
        let (store, ids, tenant) = (Arc::clone(&store), ids.clone(), w.tenant.clone());
        tokio::spawn(async move {
            for id in ids.iter().rev().step_by(2) {
                store
                    .cancel(id, None, &audit(&tenant, "job.cancel", id))
                    .await
                    .expect("cancel");
            }
        })
    };
    rounds.await.unwrap();
    reports.await.unwrap();
    cancels.await.unwrap();

    // Whatever the interleaving: cancelled jobs have no live task, and no
    // task was lost or placed twice.
    for (i, id) in ids.iter().enumerate() {
        let job = store.job(id).await.unwrap().unwrap();
        let total: u64 = job.counts.iter().map(|(_, n)| n).sum();
        assert_eq!(total, TASKS, "{id}: {:?}", job.counts);
        let tasks = store.tasks(id, None, 1_000).await.unwrap();
        assert_eq!(tasks.len() as u64, TASKS, "{id}");
        if (JOBS - 1 - i).is_multiple_of(2) {
            assert_eq!(job.state, JobState::Cancelled, "{id}");
            assert!(
                tasks
                    .iter()
                    .all(|t| t.state == TaskState::Cancelled || t.state == TaskState::Succeeded),
                "{id}: {tasks:?}"
            );
        }
        for t in &tasks {
            assert!(t.attempt <= 1, "{id}: a task placed twice: {t:?}");
        }
    }
});
