//! What a scheduling round reads. What it writes is a rule of the lifecycle
//! ([`lifecycle::write_round`](super::lifecycle::write_round)), written
//! set-wise by each backend.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::backend::Backend;
use crate::conn::{Arg, Conn};
use crate::sql::sites::PoolSelect;
use suanwang_core::price::PoolPrice;

use crate::sql::{corrupt, int, placeholders, JobCount, Named, ACTIVE, INSERT_ROWS_MAX, PENDING};
use crate::{Result, RoundInput, RoundPoolRow, WaitingJob};

/// A pool as the round reads it, with its site's region and name; its
/// units in use come from one sum over all active tasks ([`USED`]).
#[derive(Debug, sqlx::FromRow)]
struct RoundPoolSelect {
    id: String,
    site: String,
    name: String,
    spec: String,
    kind: String,
    family: String,
    capacity: i64,
    price_micro: i64,
    region: String,
    site_name: String,
    priced_list_micro: Option<i64>,
    clearing_micro: Option<i64>,
}

#[derive(Debug, sqlx::FromRow)]
struct PoolUse {
    pool: String,
    used: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct WaitingSelect {
    id: String,
    tenant: String,
    spec: String,
}

/// Units held per pool.
static USED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT pool, CAST(SUM(units) AS BIGINT) AS used FROM tasks \
         WHERE state IN ({}) AND pool IS NOT NULL GROUP BY pool",
        *ACTIVE
    )
});

/// Pending task rows per job (index `tasks_pending`).
static PENDING_PER_JOB: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT job, COUNT(*) AS n FROM tasks WHERE state = {} GROUP BY job",
        *PENDING
    )
});

/// Tasks holding capacity per job (index `tasks_active`).
static ACTIVE_PER_JOB: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT job, COUNT(*) AS n FROM tasks WHERE state IN ({}) GROUP BY job",
        *ACTIVE
    )
});

pub(crate) async fn round_input(store: &impl Backend) -> Result<RoundInput> {
    let mut reader = store.reader();
    let pools: Vec<RoundPoolSelect> = reader
        .fetch_all(
            "SELECT p.id, p.site, p.name, p.spec, p.kind, p.family, p.capacity, p.price_micro, \
             s.region, s.name AS site_name, p.priced_list_micro, p.clearing_micro \
             FROM pools p JOIN sites s ON s.id = p.site WHERE p.active = 1 AND s.healthy = 1 \
             ORDER BY p.id",
            &[],
        )
        .await?;
    let used: Vec<PoolUse> = reader.fetch_all(&USED, &[]).await?;
    let used: BTreeMap<String, i64> = used.into_iter().map(|u| (u.pool, u.used)).collect();
    let mut site_names = BTreeMap::new();
    let pools = pools
        .into_iter()
        .map(|row| {
            site_names.entry(row.site.clone()).or_insert(row.site_name);
            // Both or neither: the round writes them together.
            let last_price = match (row.priced_list_micro, row.clearing_micro) {
                (Some(list), Some(clearing)) => Some(PoolPrice {
                    list_micro_yuan_per_unit_hour: list,
                    clearing_micro_yuan_per_unit_hour: clearing,
                }),
                (None, None) => None,
                (list, clearing) => {
                    return Err(corrupt(
                        "pools.priced_list_micro, pools.clearing_micro",
                        format!("pool {}", row.id),
                        (list, clearing),
                    ))
                }
            };
            // No active task on the pool: nothing in use.
            let used = used.get(&row.id).copied().unwrap_or(0);
            let pool = PoolSelect {
                id: row.id,
                site: row.site,
                name: row.name,
                spec: row.spec,
                kind: row.kind,
                family: row.family,
                capacity: row.capacity,
                price_micro: row.price_micro,
                used,
            }
            .into_row()?;
            Ok(RoundPoolRow {
                pool,
                region: row.region,
                last_price,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Three queries, each served by one partial index: pending task rows,
    // never-placed tails, tasks holding capacity.
    let pending: Vec<JobCount> = reader.fetch_all(&PENDING_PER_JOB, &[]).await?;
    let active: Vec<JobCount> = reader.fetch_all(&ACTIVE_PER_JOB, &[]).await?;
    let tails: Vec<JobCount> = reader
        .fetch_all(
            "SELECT id AS job, tasks - tasks_materialized AS n FROM jobs \
             WHERE tasks_materialized < tasks",
            &[],
        )
        .await?;
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in pending.into_iter().chain(tails) {
        let n: u64 = int("count of waiting tasks", Named("job", &row.job), row.n)?;
        let entry = counts.entry(row.job).or_insert((0, 0));
        entry.0 += n;
        entry.1 += n;
    }
    for row in active {
        if let Some(entry) = counts.get_mut(&row.job) {
            entry.1 += int::<u64>("count of active tasks", Named("job", &row.job), row.n)?;
        }
    }
    let mut jobs = Vec::with_capacity(counts.len());
    let ids: Vec<&String> = counts.keys().collect();
    for chunk in ids.chunks(INSERT_ROWS_MAX) {
        let sql = format!(
            "SELECT id, tenant, spec FROM jobs WHERE cancel_requested = 0 AND id IN ({}) ORDER BY id",
            placeholders(chunk.len())
        );
        let args: Vec<Arg<'_>> = chunk.iter().map(|id| (*id).into()).collect();
        let rows: Vec<WaitingSelect> = reader.fetch_all(&sql, &args).await?;
        for row in rows {
            let (pending, live) = counts[&row.id];
            jobs.push(WaitingJob {
                id: row.id,
                tenant: row.tenant,
                spec: row.spec,
                pending,
                live,
            });
        }
    }
    // What each waiting tenant's wallet can hold; a tenant with no wallet
    // has none (and nothing of its priced work is placed).
    let tenants: std::collections::BTreeSet<&str> =
        jobs.iter().map(|j| j.tenant.as_str()).collect();
    let ids: Vec<suanwang_ledger::AccountId> = tenants
        .into_iter()
        .map(suanwang_core::bill::chart::wallet)
        .collect();
    let wallets = crate::sql::ledger::accounts_of(&mut reader, &ids)
        .await?
        .iter()
        .map(|account| {
            let tenant = account
                .id
                .as_str()
                .strip_prefix("wallet:")
                .expect("a wallet's id");
            (
                tenant.to_owned(),
                suanwang_core::bill::spare_micro(Some(account)),
            )
        })
        .collect();
    Ok(RoundInput {
        pools,
        site_names,
        jobs,
        wallets,
    })
}
