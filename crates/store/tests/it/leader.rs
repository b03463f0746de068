//! Scheduling leadership.

use std::time::{Duration, Instant};

use suanwang_store::{RoundWrite, StoreError};

use crate::harness::*;

contract!(leadership, |db| {
    match db.backend {
        Backend::Sqlite => {
            // One file, one server: it always leads.
            assert!(db.store.try_lead().await.unwrap());
            assert!(db.store.try_lead().await.unwrap());
            let other = db.open().await;
            assert!(other.try_lead().await.unwrap());
            other.apply_round(&RoundWrite::default()).await.unwrap();
        }
        Backend::Postgres => {
            // The harness's store took the leadership first.
            let opener = db.opener.clone();
            let leader = db.store;
            let w = world(&*leader).await;
            submit(&*leader, job("j1", &w.tenant, 3, 1, 0)).await;
            let round = RoundWrite {
                placements: vec![placed("j1".into(), w.pool.clone(), w.site.clone(), 1)],
                whys: vec![],
                prices: Vec::new(),
                holds: vec![],
                at_ms: T0,
            };

            // A store that has not tried to lead writes no round.
            let follower = opener.open().await;
            let outcome = follower.apply_round(&round).await;
            assert!(matches!(outcome, Err(StoreError::NotLeader)), "{outcome:?}");
            // Exactly one leads, and keeps leading.
            assert!(!follower.try_lead().await.unwrap());
            assert!(leader.try_lead().await.unwrap());
            assert!(!follower.try_lead().await.unwrap());
            let outcome = follower.apply_round(&round).await;
            assert!(matches!(outcome, Err(StoreError::NotLeader)), "{outcome:?}");
            leader.apply_round(&round).await.unwrap();
            assert_eq!(
                task_states(&*follower, "j1").await,
                strings(&["placed", "pending", "pending"])
            );

            // The leader goes away: the follower takes over within seconds.
            drop(leader);
            let started = Instant::now();
            loop {
                if follower.try_lead().await.unwrap() {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the follower did not take over within 5 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            follower.apply_round(&round).await.unwrap();
            assert_eq!(
                task_states(&*follower, "j1").await,
                strings(&["placed", "placed", "pending"])
            );

            // A newcomer follows.
            let newcomer = opener.open().await;
            assert!(!newcomer.try_lead().await.unwrap());
            let outcome = newcomer.apply_round(&round).await;
            assert!(matches!(outcome, Err(StoreError::NotLeader)), "{outcome:?}");
            assert!(follower.try_lead().await.unwrap());
        }
    }
});
