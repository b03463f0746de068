//! A database written by schema v1 (every task a row from submission on)
//! opens under the current schema with nothing lost: the migration marks
//! every old job's rows as materialised (old pending rows are placed like
//! rows that went back to pending) and knows its gangs from their specs.

use std::borrow::Cow;

use sqlx::Connection;
use suanwang_core::lifecycle::TaskState;
use suanwang_store::prelude::*;
use suanwang_store::{PgStore, SqliteStore};

use crate::harness::*;

/// The rows schema v1 held: a tenant, a waiting job of 3 tasks and a
/// finished one of 2, every task with its row.
const V1_ROWS: &[&str] = &[
    "INSERT INTO principals (id, role, name, parent, created_at_ms) VALUES ('t1', 'tenant', 'acme', NULL, 0)",
    "INSERT INTO jobs (id, tenant, name, spec, state, tasks, units, retries, cancel_requested, created_at_ms) \
     VALUES ('old', 't1', 'old', '{}', 'pending', 3, 2, 0, 0, 0), ('done', 't1', 'done', '{}', 'succeeded', 2, 1, 0, 0, 0), \
            ('gg', 't1', 'gg', '{\"kind\":\"gang\"}', 'pending', 2, 1, 1, 0, 0)",
    "INSERT INTO tasks (job, idx, state, attempt, units) VALUES ('gg', 0, 'pending', 0, 1), ('gg', 1, 'pending', 0, 1)",
    "INSERT INTO tasks (job, idx, state, attempt, units) VALUES \
     ('old', 0, 'pending', 0, 2), ('old', 1, 'pending', 0, 2), ('old', 2, 'pending', 0, 2)",
    "INSERT INTO tasks (job, idx, state, attempt, units, pool, site, exit_code) VALUES \
     ('done', 0, 'succeeded', 1, 1, 'p', 's', 0), ('done', 1, 'succeeded', 1, 1, 'p', 's', 0)",
];

async fn check_upgraded(store: &dyn Store) {
    assert!(store.try_lead().await.unwrap());
    let old = store.job("old").await.unwrap().expect("old job");
    assert_eq!(old.counts, [(TaskState::Pending, 3)]);
    let done = store.job("done").await.unwrap().expect("done job");
    assert_eq!(
        (done.state.as_str(), done.counts.clone()),
        ("succeeded", vec![(TaskState::Succeeded, 2)])
    );
    let waiting: Vec<(String, u64)> = store
        .round_input()
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| (j.id, j.pending))
        .collect();
    assert_eq!(waiting, [("gg".to_owned(), 2), ("old".to_owned(), 3)]);
    // The migration knew the gang from its spec: a failed member takes its
    // peer back to pending.
    place(store, "gg", "p", "s", 2).await;
    store
        .report("s", &[status("gg", 0, 1, "failed")], &[], T0)
        .await
        .unwrap();
    assert_eq!(
        task_states(store, "gg").await,
        strings(&["pending", "pending"])
    );
    place(store, "old", "p", "s", 2).await;
    let tasks: Vec<(u64, String, u32)> = store
        .tasks("old", None, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.index, t.state.as_str().to_owned(), t.attempt))
        .collect();
    assert_eq!(
        tasks,
        [
            (0, "placed".to_owned(), 1),
            (1, "placed".to_owned(), 1),
            (2, "pending".to_owned(), 0)
        ]
    );
}

#[tokio::test]
async fn sqlite_v1_database_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let mut v1 = sqlx::migrate!("migrations/sqlite");
        v1.migrations = Cow::Owned(v1.migrations[..1].to_vec());
        v1.run(&pool).await.unwrap();
        for sql in V1_ROWS {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let store = SqliteStore::open(&path).await.unwrap();
    check_upgraded(&store).await;
}

#[tokio::test]
async fn postgres_v1_database_upgrades() {
    let Some(admin) = admin_url() else { return };
    let name = unique_name();
    admin_execute(&admin, &format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let url = with_database(&admin, &name);
    {
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut v1 = sqlx::migrate!("migrations/postgres");
        v1.migrations = Cow::Owned(v1.migrations[..1].to_vec());
        v1.run(&mut connection).await.unwrap();
        for sql in V1_ROWS {
            sqlx::query(sql).execute(&mut connection).await.unwrap();
        }
        connection.close().await.unwrap();
    }
    let store = PgStore::open(&url).await.unwrap();
    check_upgraded(&store).await;
    drop(store);
    let _ = admin_execute(
        &admin,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await;
}
