//! Holds at placement and their settlement (`core::bill`), on both
//! databases: a round reserves its jobs' estimates on the wallet; the
//! hold is posted for what was rated when its last attempt ends, the rest
//! released; a record after that is charged directly; a cancel before any
//! usage voids it; escrow always returns to zero and the ledger replays.

use suanwang_core::bill::chart;
use suanwang_core::machine::round::Placed;
use suanwang_core::price::AttemptPrice;
use suanwang_store::ledger::{codes, AccountId, Transfer, TransferId};
use suanwang_store::prelude::*;
use suanwang_store::{Audit, ItemOutcome, RoundHold, RoundWrite, StatusIn, StoreError, UsageIn};

use crate::harness::*;

const YUAN: i64 = 1_000_000;
/// Reports come ten minutes after the round: every record's wall time
/// fits its attempt's window.
const LATER: i64 = T0 + 600_000;

const PRICE: AttemptPrice = AttemptPrice {
    price_micro_yuan_per_unit_hour: 360_000,
    transfer_micro_yuan_per_gb: 0,
    bid_micro_yuan_per_unit_hour: 400_000,
    data_mb: 0,
};

/// The chart's accounts and `yuan` in the tenant's wallet.
async fn fund(store: &dyn Store, tenant: &str, yuan: i64) {
    let mut accounts = chart::system_accounts();
    accounts.extend(chart::tenant_accounts(tenant));
    for result in store.create_accounts(&accounts, T0).await.unwrap() {
        assert!(result.is_ok(), "{result:?}");
    }
    let topup = Transfer::new(
        TransferId::new(&format!("topup:{tenant}")).unwrap(),
        chart::cash(),
        chart::wallet(tenant),
        yuan * YUAN,
        codes::TOPUP,
    );
    let result = store.create_transfers(&[topup], T0).await.unwrap();
    assert!(result[0].is_ok(), "{result:?}");
}

async fn balance(store: &dyn Store, id: AccountId) -> (i64, i64) {
    let account = store
        .account(&id)
        .await
        .unwrap()
        .expect("the account exists");
    (account.balance_micro(), account.totals.debits_pending_micro)
}

/// A round placing `count` tasks of `job` that holds `held` micro-yuan.
fn round(w: &World, job: &str, count: u64, held: i64, at_ms: i64) -> RoundWrite {
    RoundWrite {
        placements: vec![Placed {
            job: job.into(),
            pool: w.pool.clone(),
            site: w.site.clone(),
            count,
            price: PRICE,
        }],
        whys: vec![],
        prices: vec![],
        holds: vec![RoundHold {
            job: job.into(),
            tenant: w.tenant.clone(),
            data_region: "r1".into(),
            attempts: count,
            amount_micro: held,
        }],
        at_ms,
    }
}

fn minute(job: &str, task: u64, seq: u32, pool: &str) -> UsageIn {
    UsageIn {
        units: 2,
        wall_ms: 60_000,
        ..usage(job, task, 1, seq, pool)
    }
}

async fn accepted(
    store: &dyn Store,
    site: &str,
    statuses: &[StatusIn],
    usage: &[UsageIn],
    at: i64,
) {
    let (s, u) = store.report(site, statuses, usage, at).await.unwrap();
    assert!(
        s.iter().chain(&u).all(|o| *o == ItemOutcome::Accepted),
        "{s:?} {u:?}"
    );
}

contract!(
    a_hold_is_posted_for_what_ran_when_its_last_attempt_ends,
    |db| {
        let store = db.store.clone();
        let w = world(&*store).await;
        fund(&*store, &w.tenant, 10).await;
        submit(&*store, job("j1", &w.tenant, 3, 2, 0)).await;
        store
            .apply_round(&round(&w, "j1", 3, 3 * YUAN, T0 + 1))
            .await
            .unwrap();
        let wallet = chart::wallet(&w.tenant);
        assert_eq!(
            balance(&*store, wallet.clone()).await,
            (10 * YUAN, 3 * YUAN),
            "held"
        );

        // Two of three finish, with a minute of 2 units each: 2 × 1/60 h ×
        // 0.36 yuan = 0.012 yuan each. The hold stays.
        let done = |task| status("j1", task, 1, "succeeded");
        accepted(
            &*store,
            &w.site,
            &[done(0), done(1)],
            &[minute("j1", 0, 0, &w.pool), minute("j1", 1, 0, &w.pool)],
            LATER,
        )
        .await;
        assert_eq!(
            balance(&*store, wallet.clone()).await,
            (10 * YUAN, 3 * YUAN)
        );
        // The last one ends: the hold is posted for the three minutes.
        accepted(
            &*store,
            &w.site,
            &[done(2)],
            &[minute("j1", 2, 0, &w.pool)],
            LATER + 1,
        )
        .await;
        assert_eq!(
            balance(&*store, wallet.clone()).await,
            (10 * YUAN - 36_000, 0),
            "charged what ran, the rest released"
        );
        assert_eq!(
            balance(&*store, chart::earnings(&w.provider)).await.0,
            36_000
        );
        let escrow = store.account(&chart::escrow()).await.unwrap().unwrap();
        assert_eq!(escrow.balance_micro(), 0, "escrow passes everything on");
        assert_eq!(escrow.totals.credits_pending_micro, 0);

        // A record of a finished attempt that comes after: charged directly.
        accepted(
            &*store,
            &w.site,
            &[],
            &[minute("j1", 0, 1, &w.pool)],
            LATER + 2,
        )
        .await;
        assert_eq!(
            balance(&*store, wallet.clone()).await,
            (10 * YUAN - 48_000, 0)
        );
        assert_eq!(
            balance(&*store, chart::earnings(&w.provider)).await.0,
            48_000
        );
        // And its resend is a duplicate: nothing charged twice.
        let (_, again) = store
            .report(&w.site, &[], &[minute("j1", 0, 1, &w.pool)], LATER + 3)
            .await
            .unwrap();
        assert_eq!(again, [ItemOutcome::Duplicate]);
        assert_eq!(balance(&*store, wallet.clone()).await.0, 10 * YUAN - 48_000);
        let totals = store
            .bill_totals(&suanwang_store::BillFilter {
                job: Some("j1".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(totals.compute_micro, 48_000, "the bill is what was charged");
        store
            .ledger_check()
            .await
            .expect("balances replay from the history");
    }
);

contract!(a_cancel_before_any_usage_voids_the_hold, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    fund(&*store, &w.tenant, 10).await;
    submit(&*store, job("j2", &w.tenant, 4, 1, 0)).await;
    store
        .apply_round(&round(&w, "j2", 4, 2 * YUAN, T0 + 1))
        .await
        .unwrap();
    let wallet = chart::wallet(&w.tenant);
    assert_eq!(
        balance(&*store, wallet.clone()).await,
        (10 * YUAN, 2 * YUAN)
    );
    let audit = Audit {
        at_ms: LATER,
        principal: w.tenant.clone(),
        action: "job.cancel".into(),
        target: "j2".into(),
        detail: String::new(),
    };
    store.cancel("j2", None, &audit).await.unwrap();
    assert_eq!(
        balance(&*store, wallet).await,
        (10 * YUAN, 0),
        "released whole"
    );
    store
        .ledger_check()
        .await
        .expect("balances replay from the history");
});

contract!(
    a_hold_the_wallet_no_longer_covers_fails_the_round_whole,
    |db| {
        let store = db.store.clone();
        let w = world(&*store).await;
        fund(&*store, &w.tenant, 1).await;
        submit(&*store, job("j3", &w.tenant, 2, 1, 0)).await;
        let error = store
            .apply_round(&round(&w, "j3", 2, 2 * YUAN, T0 + 1))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error}");
        // Nothing of the round was written: both tasks still wait.
        let tasks = store.tasks("j3", None, 10).await.unwrap();
        assert!(
            tasks
                .iter()
                .all(|t| t.state == suanwang_core::lifecycle::TaskState::Pending),
            "{tasks:?}"
        );
        assert_eq!(balance(&*store, chart::wallet(&w.tenant)).await, (YUAN, 0));
    }
);
