//! The control plane end to end: the real `suanwang serve` process, spoken
//! to over HTTP and through the `suanwang` client commands, on SQLite and on
//! PostgreSQL.
//!
//! PostgreSQL tests need `SUANWANG_TEST_POSTGRES` (an admin URL, e.g.
//! `postgres://suanwang:suanwang@127.0.0.1:5432/suanwang`): each test
//! creates a fresh database from it and drops it afterwards. Without it they
//! say why on stderr and pass, unless `SUANWANG_REQUIRE_POSTGRES=1`, which
//! turns the skip into a failure (CI sets it).

/// Defines `$sqlite` and `$postgres` tests that run `$test(db)` on a fresh
/// database of each backend.
macro_rules! both_backends {
    ($test:ident, $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $sqlite() {
            $test($crate::server::harness::Db::sqlite()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $postgres() {
            if let Some(db) = $crate::server::harness::Db::postgres(stringify!($postgres)).await {
                $test(db).await;
            }
        }
    };
}

mod access;
mod bodies;
mod crash;
mod crash_money;
mod deadline;
mod failover;
pub mod harness;
mod idempotency;
mod lease;
mod lifecycle;
mod market;
mod paging;
mod profiles;
mod roles;
mod system;
mod text;
mod wallet;
