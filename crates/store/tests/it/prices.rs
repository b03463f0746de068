//! Prices at placement: a round records what it was given — each placed
//! attempt's price, and the pools whose price changed — and the market and
//! the round's next read see them.

use suanwang_core::machine::round::Placed;
use suanwang_core::price::{AttemptPrice, PoolPrice};
use suanwang_place::Kind;
use suanwang_store::{MarketFilter, PlacedAt, PoolPriced, PriceRow, RoundWrite};

use crate::harness::*;

fn at(list: i64, clearing: i64) -> PoolPrice {
    PoolPrice {
        list_micro_yuan_per_unit_hour: list,
        clearing_micro_yuan_per_unit_hour: clearing,
    }
}

contract!(a_round_records_attempt_prices_and_pool_prices, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    submit(&*store, job("j1", &w.tenant, 5, 2, 1)).await;
    let price = AttemptPrice {
        price_micro_yuan_per_unit_hour: 2_750_000,
        transfer_micro_yuan_per_gb: 30_000,
        bid_micro_yuan_per_unit_hour: 3_000_000,
        data_mb: 0,
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
            prices: vec![PoolPriced {
                pool: w.pool.clone(),
                price: at(2_500_000, 250_000),
            }],
            holds: vec![],
            at_ms: T0 + 10,
        })
        .await
        .unwrap();
    // The placed attempts carry the round's time and price; the others none.
    let tasks = store.tasks("j1", None, 10).await.unwrap();
    let placed: Vec<Option<PlacedAt>> = tasks.iter().map(|t| t.placed).collect();
    let expect = Some(PlacedAt {
        at_ms: T0 + 10,
        price,
    });
    assert_eq!(placed, [expect, expect, expect, None, None]);

    // The pool's newest price, for the next round and the market.
    let input = store.round_input().await.unwrap();
    assert_eq!(input.pools[0].last_price, Some(at(2_500_000, 250_000)));
    let market = store
        .market(&MarketFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(market.len(), 1);
    assert_eq!(market[0].clearing, Some((250_000, T0 + 10)));
    assert_eq!((market[0].capacity, market[0].used), (16, 6));
    assert_eq!(market[0].list_micro, 2_500_000);
    assert!(market[0].healthy);

    // A later round that places the tasks left again (rows re-placed after
    // a loss keep their own new price) and records a new clearing price.
    let cheaper = AttemptPrice {
        price_micro_yuan_per_unit_hour: 2_500_000,
        ..price
    };
    store
        .apply_round(&RoundWrite {
            placements: vec![Placed {
                job: "j1".into(),
                pool: w.pool.clone(),
                site: w.site.clone(),
                count: 2,
                price: cheaper,
            }],
            whys: vec![],
            prices: vec![PoolPriced {
                pool: w.pool.clone(),
                price: at(2_500_000, 0),
            }],
            holds: vec![],
            at_ms: T0 + 20,
        })
        .await
        .unwrap();
    let tasks = store.tasks("j1", None, 10).await.unwrap();
    assert_eq!(
        tasks[4].placed,
        Some(PlacedAt {
            at_ms: T0 + 20,
            price: cheaper
        })
    );
    assert_eq!(tasks[0].placed, expect, "earlier attempts keep theirs");
    assert_eq!(
        store.price_history(&w.pool, None, 10).await.unwrap(),
        [
            PriceRow {
                at_ms: T0 + 20,
                price: at(2_500_000, 0)
            },
            PriceRow {
                at_ms: T0 + 10,
                price: at(2_500_000, 250_000)
            },
        ]
    );
    assert_eq!(
        store
            .price_history(&w.pool, Some(T0 + 20), 10)
            .await
            .unwrap()
            .len(),
        1,
        "a page before a time"
    );
});

contract!(the_market_filters_and_pages, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    // A second site elsewhere with a CPU pool of another family.
    let other = site(&*store, &w.provider, "nx1", "r2").await;
    let mut cpu = pool(&other, "cpu", 64);
    cpu.kind = "cpu".into();
    cpu.family = "x86".into();
    cpu.price_micro = 350_000;
    store
        .put_pools(&other, &[cpu.clone()], &audit(&other, "pools.put", &other))
        .await
        .unwrap();
    let all = store
        .market(&MarketFilter::default(), None, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|row| row.pool.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "in pool id order");
    assert_eq!(ids.len(), 2);
    // Never heartbeat: listed, as down; never offered, so never priced.
    let nx = all.iter().find(|row| row.pool == cpu.id).unwrap();
    assert!(!nx.healthy);
    assert_eq!(nx.clearing, None);
    assert_eq!((nx.region.as_str(), nx.kind), ("r2", Kind::Cpu));

    let only = |kind, family: Option<&str>, region: Option<&str>| MarketFilter {
        kind,
        family: family.map(str::to_owned),
        region: region.map(str::to_owned),
    };
    let pools = |rows: Vec<suanwang_store::MarketRow>| -> Vec<String> {
        rows.into_iter().map(|row| row.pool).collect()
    };
    assert_eq!(
        pools(
            store
                .market(&only(Some(Kind::Gpu), None, None), None, 10)
                .await
                .unwrap()
        ),
        std::slice::from_ref(&w.pool)
    );
    assert_eq!(
        pools(
            store
                .market(&only(None, Some("x86"), None), None, 10)
                .await
                .unwrap()
        ),
        std::slice::from_ref(&cpu.id)
    );
    assert_eq!(
        pools(
            store
                .market(&only(None, None, Some("r1")), None, 10)
                .await
                .unwrap()
        ),
        std::slice::from_ref(&w.pool)
    );
    assert!(store
        .market(&only(Some(Kind::Hpc), None, None), None, 10)
        .await
        .unwrap()
        .is_empty());
    // Pages: one at a time, after the last id.
    let first = store
        .market(&MarketFilter::default(), None, 1)
        .await
        .unwrap();
    let second = store
        .market(&MarketFilter::default(), Some(&first[0].pool), 1)
        .await
        .unwrap();
    assert_eq!(pools(first), [ids[0].to_owned()]);
    assert_eq!(pools(second), [ids[1].to_owned()]);
});
