//! Billing integrity: a usage record is stored (and billed) only when it
//! matches its task — the job's units per task, and a wall time that, with
//! what the attempt already has stored, fits the window from the attempt's
//! placement to the report plus the slack (`core::machine::report`).
//! Anything else is rejected with a reason naming the field and numbers.

use suanwang_core::machine::report::{UsageRejection, WINDOW_SLACK_MS};
use suanwang_store::{BillFilter, ItemOutcome, UsageIn};

use crate::harness::*;

/// The reason of a rejection, and the rule it names.
fn rejection(outcome: &ItemOutcome) -> (UsageRejection, &str) {
    match outcome {
        ItemOutcome::Rejected(reason) => (
            UsageRejection::of(reason).unwrap_or_else(|| panic!("an unnamed rule: {reason}")),
            reason.as_str(),
        ),
        other => panic!("not rejected: {other:?}"),
    }
}

contract!(usage_that_does_not_match_its_task_is_rejected, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    // Two tasks of two units each, placed at T0 + 1.
    submit(&*store, job("j1", &w.tenant, 2, 2, 0)).await;
    place(&*store, "j1", &w.pool, &w.site, 2).await;
    let record = |task, seq, units, wall_ms| UsageIn {
        units,
        wall_ms,
        ..usage("j1", task, 1, seq, &w.pool)
    };
    // Reported at T0 + 10 001: a window of 10 000 ms, plus the slack: a
    // minute and 1 per mille (10 ms).
    let now = T0 + 10_001;
    let most = 10_000 + WINDOW_SLACK_MS + 10;

    let (_, u) = store
        .report(
            &w.site,
            &[],
            &[
                record(0, 0, 1, 1_000),
                record(0, 1, 2, most + 1),
                record(1, 0, 2, most),
                record(1, 1, 2, 1),
            ],
            now,
        )
        .await
        .unwrap();
    let (rule, reason) = rejection(&u[0]);
    assert_eq!(rule, UsageRejection::Units);
    assert_eq!(reason, "units 1 is not the job's 2 per task");
    let (rule, reason) = rejection(&u[1]);
    assert_eq!(rule, UsageRejection::Window);
    assert_eq!(
        reason,
        format!(
            "wall_ms {} of attempt 1 in all (0 before this record's {}) is beyond its window: \
             at most {most} ms, 10000 ms from its placement at {} to this report at {now} plus the slack",
            most + 1,
            most + 1,
            T0 + 1
        )
    );
    // Up to the edge is taken; one more millisecond of the same attempt is
    // not, in the same report or a later one at the same time.
    assert_eq!(u[2], ItemOutcome::Accepted);
    let (rule, reason) = rejection(&u[3]);
    assert_eq!(rule, UsageRejection::Window);
    assert!(
        reason.starts_with(&format!(
            "wall_ms {} of attempt 1 in all ({most} before this record's 1)",
            most + 1
        )),
        "{reason}"
    );
    let (_, u) = store
        .report(
            &w.site,
            &[],
            &[record(1, 0, 2, most), record(1, 2, 2, 1)],
            now,
        )
        .await
        .unwrap();
    // The resend is a duplicate, not a second helping of the window; the
    // new record finds the stored one's wall time.
    assert_eq!(u[0], ItemOutcome::Duplicate);
    let (rule, reason) = rejection(&u[1]);
    assert_eq!(rule, UsageRejection::Window);
    assert!(
        reason.contains(&format!("({most} before this record's 1)")),
        "{reason}"
    );
    // Later, the window is wider: the same record fits.
    let (_, u) = store
        .report(&w.site, &[], &[record(1, 2, 2, 1)], now + 1)
        .await
        .unwrap();
    assert_eq!(u, [ItemOutcome::Accepted]);

    // Only what was taken is stored, and billed.
    let rows = store.usage("j1", None, 1_000).await.unwrap();
    let stored: Vec<(u64, u32, u64)> = rows.iter().map(|r| (r.task, r.seq, r.wall_ms)).collect();
    assert_eq!(stored, [(1, 0, most), (1, 2, 1)]);
    let filter = BillFilter {
        job: Some("j1".into()),
        ..BillFilter::default()
    };
    let lines = store.bill_lines(&filter, None, 100).await.unwrap();
    let billed: Vec<(u64, u32)> = lines.iter().map(|l| (l.key.task, l.key.seq)).collect();
    assert_eq!(billed, [(1, 0), (1, 2)]);
});
