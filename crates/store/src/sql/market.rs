//! The market: every active pool with its site, its newest price and its
//! free capacity, in pool id order, a page at a time. Public to every
//! signed-in caller; it names no job and no tenant.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use suanwang_place::Kind;

use crate::backend::Backend;
use crate::conn::{Arg, Conn};
use crate::sql::{corrupt, flag, int, placeholders, Named, ACTIVE};
use crate::{MarketFilter, MarketRow, Result};

#[derive(Debug, sqlx::FromRow)]
struct MarketSelect {
    id: String,
    name: String,
    site: String,
    site_name: String,
    region: String,
    healthy: i64,
    kind: String,
    family: String,
    spec: String,
    capacity: i64,
    price_micro: i64,
    clearing_micro: Option<i64>,
    priced_at_ms: Option<i64>,
}

#[derive(Debug, sqlx::FromRow)]
struct PoolUse {
    pool: String,
    used: i64,
}

/// Units held per pool of the page (index `tasks_active` by site).
static USED_OF: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT pool, CAST(SUM(units) AS BIGINT) AS used FROM tasks \
         WHERE state IN ({}) AND site IN (SITES) AND pool IS NOT NULL GROUP BY pool",
        *ACTIVE
    )
});

pub(crate) async fn market(
    store: &impl Backend,
    filter: &MarketFilter,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<MarketRow>> {
    let mut sql = String::from(
        "SELECT p.id, p.name, p.site, s.name AS site_name, s.region, s.healthy, p.kind, p.family, \
         p.spec, p.capacity, p.price_micro, p.clearing_micro, p.priced_at_ms \
         FROM pools p JOIN sites s ON s.id = p.site WHERE p.active = 1",
    );
    let mut args: Vec<Arg<'_>> = Vec::new();
    if let Some(kind) = filter.kind {
        sql.push_str(" AND p.kind = ?");
        args.push(kind.as_str().into());
    }
    if let Some(family) = &filter.family {
        sql.push_str(" AND p.family = ?");
        args.push(family.as_str().into());
    }
    if let Some(region) = &filter.region {
        sql.push_str(" AND s.region = ?");
        args.push(region.as_str().into());
    }
    if let Some(after) = after {
        sql.push_str(" AND p.id > ?");
        args.push(after.into());
    }
    sql.push_str(" ORDER BY p.id LIMIT ?");
    args.push(limit.into());
    let mut reader = store.reader();
    let rows: Vec<MarketSelect> = reader.fetch_all(&sql, &args).await?;
    let mut sites: Vec<&str> = rows.iter().map(|row| row.site.as_str()).collect();
    sites.sort_unstable();
    sites.dedup();
    let mut used: BTreeMap<String, i64> = BTreeMap::new();
    if !sites.is_empty() {
        let sql = USED_OF.replace("SITES", &placeholders(sites.len()));
        let args: Vec<Arg<'_>> = sites.iter().map(|&site| site.into()).collect();
        let uses: Vec<PoolUse> = reader.fetch_all(&sql, &args).await?;
        used.extend(uses.into_iter().map(|u| (u.pool, u.used)));
    }
    rows.into_iter()
        .map(|row| {
            let of = Named("pool", &row.id);
            let kind =
                Kind::parse(&row.kind).ok_or_else(|| corrupt("pools.kind", of, &row.kind))?;
            let clearing = match (row.clearing_micro, row.priced_at_ms) {
                (Some(clearing), Some(at_ms)) => Some((clearing, at_ms)),
                (None, None) => None,
                partial => {
                    return Err(corrupt(
                        "pools.clearing_micro, pools.priced_at_ms",
                        of,
                        partial,
                    ))
                }
            };
            // No active task on the pool: nothing in use.
            let in_use = used.get(&row.id).copied().unwrap_or(0);
            Ok(MarketRow {
                healthy: flag("sites.healthy", Named("site", &row.site), row.healthy)?,
                capacity: int("pools.capacity", of, row.capacity)?,
                used: int("tasks.units (sum)", of, in_use)?,
                pool: row.id.clone(),
                pool_name: row.name,
                site: row.site,
                site_name: row.site_name,
                region: row.region,
                kind,
                family: row.family,
                spec: row.spec,
                list_micro: row.price_micro,
                clearing,
            })
        })
        .collect()
}
