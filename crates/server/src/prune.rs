//! Background pruning of what must not grow without bound: idempotency
//! records older than `Settings::idempotency_retention`. Every replica runs
//! it; a delete that another replica already did deletes nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::now_ms;
use crate::state::AppState;

/// Records deleted per statement, so one prune never holds the write lock
/// for long; a backlog drains over several statements.
pub const PRUNE_BATCH_MAX: u32 = 10_000;
/// Statements per pass; a larger backlog waits for the next pass.
pub const PRUNE_STATEMENTS_PER_PASS_MAX: u32 = 100;
/// The longest pause between passes.
pub const PRUNE_INTERVAL_MAX: Duration = Duration::from_secs(60);

/// How often to prune for `retention`: a tenth of it, between one second
/// and [`PRUNE_INTERVAL_MAX`], so a record outlives its retention by at most
/// about a tenth.
pub fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), PRUNE_INTERVAL_MAX)
}

/// One pass: deletes the records created before `now_ms - retention`, in
/// bounded statements. Returns how many were deleted.
pub async fn prune_once(state: &AppState, now_ms: i64) -> suanwang_store::Result<u64> {
    let retention_ms = i64::try_from(state.settings.idempotency_retention.as_millis())
        .expect("retention is bounded by the configuration");
    let created_before_ms = now_ms.saturating_sub(retention_ms);
    let mut deleted_total = 0;
    for _ in 0..PRUNE_STATEMENTS_PER_PASS_MAX {
        let deleted = state
            .store
            .prune_idempotency(created_before_ms, PRUNE_BATCH_MAX)
            .await?;
        deleted_total += deleted;
        if deleted < u64::from(PRUNE_BATCH_MAX) {
            break;
        }
    }
    Ok(deleted_total)
}

/// Prunes every [`interval`] until `shutdown`.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let every = interval(state.settings.idempotency_retention);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(every) => {}
        }
        match prune_once(&state, now_ms()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "pruned idempotency records"),
            Err(error) => {
                tracing::warn!(%error, "pruning idempotency records failed; next pass will retry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_tenth_of_the_retention_within_bounds() {
        for (retention_s, expect_ms) in [
            (1, 1_000),
            (10, 1_000),
            (30, 3_000),
            (600, 60_000),
            (86_400, 60_000),
        ] {
            assert_eq!(
                interval(Duration::from_secs(retention_s)),
                Duration::from_millis(expect_ms),
                "retention {retention_s} s"
            );
        }
    }
}
