//! Rating: every usage record the report stores becomes one bill line, at
//! the price its attempt was placed at, exactly once; a job's compute lines
//! sum to its exact cost rounded once.

use suanwang_core::machine::round::Placed;
use suanwang_core::price::AttemptPrice;
use suanwang_store::{BillCursor, BillFilter, ItemOutcome, RoundWrite, UsageIn};

use crate::harness::*;

contract!(usage_is_rated_once_at_the_attempts_price, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 3, 2, 0)).await;
    let price = AttemptPrice {
        price_micro_yuan_per_unit_hour: 350_000,
        transfer_micro_yuan_per_gb: 30_000,
        bid_micro_yuan_per_unit_hour: 400_000,
        data_mb: 1_500,
    };
    store
        .apply_round(&RoundWrite {
            placements: vec![Placed {
                job: "j1".into(),
                pool: w.pool.clone(),
                site: w.site.clone(),
                count: 3,
                price,
            }],
            whys: vec![],
            prices: vec![],
            holds: vec![],
            at_ms: T0 + 1,
        })
        .await
        .unwrap();
    let record = |task, seq, units, wall_ms| UsageIn {
        units,
        wall_ms,
        ..usage("j1", task, 1, seq, &w.pool)
    };
    let records = [
        record(0, 0, 2, 3_333),
        record(0, 1, 2, 1_001),
        record(1, 0, 2, 5_003),
    ];
    let (_, outcomes) = store.report(&w.site, &[], &records, T0 + 10).await.unwrap();
    assert!(
        outcomes.iter().all(|o| *o == ItemOutcome::Accepted),
        "{outcomes:?}"
    );
    // A resend changes nothing.
    let (_, again) = store.report(&w.site, &[], &records, T0 + 11).await.unwrap();
    assert!(
        again.iter().all(|o| *o == ItemOutcome::Duplicate),
        "{again:?}"
    );

    let filter = BillFilter {
        job: Some("j1".into()),
        ..BillFilter::default()
    };
    let lines = store.bill_lines(&filter, None, 100).await.unwrap();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line.price_micro, 350_000);
        assert_eq!(line.placed_at_ms, T0 + 1, "the price source: the round");
        assert_eq!(line.tenant, w.tenant);
        assert_eq!((line.energy_wh, line.co2_g), (40, 20));
        // Data is billed with an attempt's first record only.
        let expect = if line.key.seq == 0 {
            (1_500, 45_000)
        } else {
            (0, 0)
        };
        assert_eq!((line.data_mb, line.transfer_micro), expect, "{line:?}");
    }
    let totals = store.bill_totals(&filter).await.unwrap();
    let exact: u128 = records
        .iter()
        .map(|r| u128::from(r.units) * u128::from(r.wall_ms) * 350_000)
        .sum();
    let rounded = ((exact * 2 + 3_600_000) / 7_200_000) as i64;
    assert_eq!(
        totals.compute_micro, rounded,
        "the exact cost, rounded once"
    );
    assert_eq!(
        totals.compute_micro,
        lines.iter().map(|l| l.compute_micro).sum::<i64>()
    );
    assert_eq!(totals.transfer_micro, 90_000);
    assert_eq!(totals.lines, 3);
    assert_eq!(totals.unit_ms, 2 * (3_333 + 1_001 + 5_003));

    // Pages after a line's key; another tenant's filter sees nothing.
    let first = store.bill_lines(&filter, None, 2).await.unwrap();
    let rest = store
        .bill_lines(&filter, Some(&first[1].key), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        rest[0].key,
        BillCursor {
            job: "j1".into(),
            task: 1,
            attempt: 1,
            seq: 0,
            site: w.site.clone()
        }
    );
    let theirs = BillFilter {
        tenant: Some("someone-else".into()),
        ..BillFilter::default()
    };
    assert_eq!(store.bill_totals(&theirs).await.unwrap().lines, 0);
    // A month with no lines.
    let before = BillFilter {
        rated_ms: Some((0, T0)),
        ..filter
    };
    assert!(store
        .bill_lines(&before, None, 10)
        .await
        .unwrap()
        .is_empty());
});
