//! Pools' prices: each round records the pools whose price changed
//! (`core::price::changed` decides which, before the write), as a history
//! row and as the pool's newest price; the market view reads them.

use suanwang_core::price::PoolPrice;

use crate::conn::Conn;
use crate::sql::{values, INSERT_ROWS_MAX};
use crate::{PoolPriced, PriceRow, Result};

/// Records `prices` at `at_ms`: one `pool_prices` row each, and the pool's
/// newest price. In the round's transaction, after its sites (pools come
/// last in the lock order).
pub(crate) async fn write(tx: &mut impl Conn, prices: &[PoolPriced], at_ms: i64) -> Result<()> {
    for chunk in prices.chunks(INSERT_ROWS_MAX) {
        let mut args = Vec::with_capacity(chunk.len() * 4);
        for priced in chunk {
            args.push(priced.pool.as_str().into());
            args.push(at_ms.into());
            args.push(priced.price.list_micro_yuan_per_unit_hour.into());
            args.push(priced.price.clearing_micro_yuan_per_unit_hour.into());
        }
        tx.execute(
            &format!(
                // Two rounds in one millisecond (tests, clock steps): the
                // later one's price is that millisecond's.
                "INSERT INTO pool_prices (pool, at_ms, list_micro, clearing_micro) VALUES {} \
                 ON CONFLICT (pool, at_ms) DO UPDATE SET list_micro = excluded.list_micro, \
                 clearing_micro = excluded.clearing_micro",
                values(chunk.len(), 4)
            ),
            &args,
        )
        .await?;
        // The VALUES columns are column1..column4 on both databases.
        let done = tx
            .execute(
                &format!(
                    "UPDATE pools SET priced_at_ms = v.column2, priced_list_micro = v.column3, \
                     clearing_micro = v.column4 FROM (VALUES {}) AS v WHERE pools.id = v.column1",
                    values(chunk.len(), 4)
                ),
                &args,
            )
            .await?;
        assert_eq!(done, chunk.len() as u64, "every priced pool exists");
    }
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct PriceSelect {
    at_ms: i64,
    list_micro: i64,
    clearing_micro: i64,
}

/// The newest `limit` price rows of `pool` before `before_ms` (all when
/// `None`), newest first.
pub(crate) async fn history(
    conn: &mut impl Conn,
    pool: &str,
    before_ms: Option<i64>,
    limit: u32,
) -> Result<Vec<PriceRow>> {
    let rows: Vec<PriceSelect> = conn
        .fetch_all(
            "SELECT at_ms, list_micro, clearing_micro FROM pool_prices \
             WHERE pool = ? AND at_ms < ? ORDER BY at_ms DESC LIMIT ?",
            &[
                pool.into(),
                before_ms.unwrap_or(i64::MAX).into(),
                limit.into(),
            ],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| PriceRow {
            at_ms: row.at_ms,
            price: PoolPrice {
                list_micro_yuan_per_unit_hour: row.list_micro,
                clearing_micro_yuan_per_unit_hour: row.clearing_micro,
            },
        })
        .collect())
}
