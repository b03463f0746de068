//! Bill lines: the rating of usage records (`core::bill::rate`), in the
//! report's transaction, and the reads of `bill show`.

use std::collections::BTreeMap;

use suanwang_core::bill::rate::{self, Carry};
use suanwang_core::price;

use crate::conn::{Arg, Conn};
use crate::sql::usage::statement_chunks;
use crate::sql::{corrupt, int, placeholders, values, Named, PlacedColumns, TaskOf};
use crate::{
    BillCursor, BillFilter, BillLineRow, BillTotals, EarningsRow, PlacedAt, Result, UsageIn,
};

/// Keys or ids named by one statement ([`statement_chunks`]).
const SELECT_ROWS_MAX: usize = 512;
/// Bill lines written by one statement: 20 values each, below both
/// databases' limits on bound values (SQLite 32,766, PostgreSQL 65,535).
const LINE_ROWS_MAX: usize = 1_024;

#[derive(Debug, sqlx::FromRow)]
struct JobRating {
    id: String,
    tenant: String,
    rated_carry: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct AttemptPriced {
    job: String,
    idx: i64,
    attempt: i64,
    #[sqlx(flatten)]
    placed: PlacedColumns,
}

/// Rates the usage records `accepted` (just stored, in report order): one
/// bill line each, at the price its attempt was placed at, and each job's
/// carry moved on. The records' jobs are locked by the report. A record of
/// an attempt placed before prices were kept has no price to bill at: it
/// stays a usage record, unbilled, and says so in the log.
pub(crate) async fn rate_in(
    tx: &mut impl Conn,
    site: &str,
    accepted: &[&UsageIn],
    now_ms: i64,
) -> Result<std::collections::BTreeSet<suanwang_core::bill::HoldRef>> {
    if accepted.is_empty() {
        return Ok(Default::default());
    }
    let mut ids: Vec<&str> = accepted.iter().map(|u| u.job.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut jobs: Vec<JobRating> = Vec::with_capacity(ids.len());
    for chunk in statement_chunks(&ids, SELECT_ROWS_MAX) {
        let args: Vec<Arg<'_>> = chunk.iter().map(|&id| id.into()).collect();
        jobs.extend(
            tx.fetch_all::<JobRating>(
                &format!(
                    "SELECT id, tenant, rated_carry FROM jobs WHERE id IN ({})",
                    placeholders(chunk.len())
                ),
                &args,
            )
            .await?,
        );
    }
    let mut carry: BTreeMap<String, Carry> = BTreeMap::new();
    let mut tenants: BTreeMap<String, String> = BTreeMap::new();
    for job in jobs {
        let of = Named("job", &job.id);
        let rated_carry: u64 = int("jobs.rated_carry", of, job.rated_carry)?;
        if rated_carry >= price::MS_PER_HOUR {
            return Err(corrupt("jobs.rated_carry", of, rated_carry));
        }
        carry.insert(job.id.clone(), Carry(rated_carry));
        tenants.insert(job.id, job.tenant);
    }
    // Per task: its current attempt, and when and at what it was placed.
    let mut prices: BTreeMap<String, BTreeMap<u64, (u32, Option<PlacedAt>)>> = BTreeMap::new();
    let mut keys: Vec<(&str, u64)> = accepted.iter().map(|u| (u.job.as_str(), u.task)).collect();
    keys.sort_unstable();
    keys.dedup();
    // One statement per 512 tasks or fewer, whatever the number of jobs.
    for chunk in statement_chunks(&keys, SELECT_ROWS_MAX) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 2);
        for &(job, task) in chunk {
            args.push(job.into());
            args.push(task.into());
        }
        let rows: Vec<AttemptPriced> = tx
            .fetch_all(
                &format!(
                    "SELECT job, idx, attempt, placed_at_ms, price_micro, transfer_micro_per_gb, bid_micro, \
                     data_mb FROM tasks WHERE (job, idx) IN (VALUES {})",
                    values(chunk.len(), 2)
                ),
                &args,
            )
            .await?;
        for row in rows {
            let of = TaskOf(&row.job, row.idx);
            let priced = row.placed.read(of)?;
            let idx: u64 = int("tasks.idx", of, row.idx)?;
            let attempt: u32 = int("tasks.attempt", of, row.attempt)?;
            prices
                .entry(row.job)
                .or_default()
                .insert(idx, (attempt, priced));
        }
    }
    let mut lines = Vec::with_capacity(accepted.len());
    for record in accepted {
        let Some((attempt, priced)) = prices
            .get(record.job.as_str())
            .and_then(|tasks| tasks.get(&record.task))
        else {
            continue;
        };
        let Some(PlacedAt {
            at_ms: placed_at_ms,
            price,
        }) = priced
        else {
            tracing::warn!(job = %record.job, task = record.task, "usage of an attempt placed before prices were kept: not billed");
            continue;
        };
        // The machine took the record as the task's current attempt.
        assert_eq!(
            *attempt, record.attempt,
            "a rated record is of the current attempt"
        );
        let tenant = tenants[&record.job].as_str();
        let carry = carry
            .get_mut(&record.job)
            .expect("the record's job was read");
        let (line, after) = rate::record(
            &rate::Record {
                units: record.units,
                wall_ms: record.wall_ms,
                seq: record.seq,
                price: *price,
            },
            *carry,
        );
        *carry = after;
        lines.push((*record, tenant, *placed_at_ms, *price, line));
    }
    for chunk in statement_chunks(&lines, LINE_ROWS_MAX) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 20);
        for (record, tenant, placed_at_ms, price, line) in chunk {
            args.extend([
                site.into(),
                record.job.as_str().into(),
                record.task.into(),
                record.attempt.into(),
                record.seq.into(),
                (*tenant).into(),
                record.pool.as_str().into(),
                record.units.into(),
                record.wall_ms.into(),
                (*placed_at_ms).into(),
                price.price_micro_yuan_per_unit_hour.into(),
                line.compute_micro.into(),
                line.data_mb.into(),
                price.transfer_micro_yuan_per_gb.into(),
                line.transfer_micro.into(),
                record.energy_wh.into(),
                record.co2_g.into(),
                record.scu_micro_hours.into(),
                record.catalogue_version.as_str().into(),
                now_ms.into(),
            ]);
        }
        tx.execute(
            &format!(
                "INSERT INTO bill_lines (site, job, task, attempt, seq, tenant, pool, units, wall_ms, \
                 placed_at_ms, price_micro, compute_micro, data_mb, transfer_micro_per_gb, transfer_micro, \
                 energy_wh, co2_g, scu_micro_hours, catalogue_version, rated_at_ms) VALUES {}",
                values(chunk.len(), 20)
            ),
            &args,
        )
        .await?;
    }
    // Every job's carry in one statement per 512 jobs or fewer (the VALUES
    // columns are column1, column2 on both databases).
    let carries: Vec<(&String, &Carry)> = carry.iter().collect();
    for chunk in statement_chunks(&carries, SELECT_ROWS_MAX) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 2);
        for (job, carry) in chunk {
            args.extend([job.as_str().into(), carry.0.into()]);
        }
        let done = tx
            .execute(
                &format!(
                    "UPDATE jobs SET rated_carry = v.column2 FROM (VALUES {}) AS v \
                     WHERE jobs.id = v.column1",
                    values(chunk.len(), 2)
                ),
                &args,
            )
            .await?;
        assert_eq!(done, chunk.len() as u64, "every rated job exists");
    }
    let rated: Vec<crate::sql::holds::Rated<'_>> = lines
        .iter()
        .map(
            |(record, _, placed_at_ms, _, line)| crate::sql::holds::Rated {
                job: record.job.as_str(),
                round_at_ms: *placed_at_ms,
                site,
                compute_micro: line.compute_micro,
                transfer_micro: line.transfer_micro,
            },
        )
        .collect();
    crate::sql::holds::rated_in(tx, &rated).await
}

#[derive(Debug, sqlx::FromRow)]
struct LineSelect {
    site: String,
    job: String,
    task: i64,
    attempt: i64,
    seq: i64,
    tenant: String,
    pool: String,
    units: i64,
    wall_ms: i64,
    placed_at_ms: i64,
    price_micro: i64,
    compute_micro: i64,
    data_mb: i64,
    transfer_micro_per_gb: i64,
    transfer_micro: i64,
    energy_wh: i64,
    co2_g: i64,
    scu_micro_hours: i64,
    catalogue_version: String,
    rated_at_ms: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct TotalsSelect {
    lines: i64,
    unit_ms: Option<i64>,
    compute_micro: Option<i64>,
    transfer_micro: Option<i64>,
    energy_wh: Option<i64>,
    co2_g: Option<i64>,
    scu_micro_hours: Option<i64>,
}

/// The `WHERE` of `filter`, and its arguments.
fn selection(filter: &BillFilter) -> (String, Vec<Arg<'_>>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut args: Vec<Arg<'_>> = Vec::new();
    if let Some(tenant) = &filter.tenant {
        sql.push_str(" AND tenant = ?");
        args.push(tenant.as_str().into());
    }
    if let Some(job) = &filter.job {
        sql.push_str(" AND job = ?");
        args.push(job.as_str().into());
    }
    if let Some((from, to)) = filter.rated_ms {
        sql.push_str(" AND rated_at_ms >= ? AND rated_at_ms < ?");
        args.push(from.into());
        args.push(to.into());
    }
    (sql, args)
}

/// A page of the lines `filter` selects, in key order, after `after`.
pub(crate) async fn lines(
    conn: &mut impl Conn,
    filter: &BillFilter,
    after: Option<&BillCursor>,
    limit: u32,
) -> Result<Vec<BillLineRow>> {
    let (mut sql, mut args) = selection(filter);
    match (after, filter.job.as_deref()) {
        (None, _) => {}
        // One job's lines: the cursor within the job, so that the index on
        // (job, task, attempt, seq, site) is searched from it (with the job
        // in the row value, SQLite searches by the job alone and scans).
        (Some(after), Some(job)) => match after.job.as_str().cmp(job) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Greater => return Ok(Vec::new()),
            std::cmp::Ordering::Equal => {
                sql.push_str(" AND (task, attempt, seq, site) > (?, ?, ?, ?)");
                args.extend([
                    after.task.into(),
                    after.attempt.into(),
                    after.seq.into(),
                    after.site.as_str().into(),
                ]);
            }
        },
        (Some(after), None) => {
            sql.push_str(" AND (job, task, attempt, seq, site) > (?, ?, ?, ?, ?)");
            args.extend([
                after.job.as_str().into(),
                after.task.into(),
                after.attempt.into(),
                after.seq.into(),
                after.site.as_str().into(),
            ]);
        }
    }
    args.push(limit.into());
    let rows: Vec<LineSelect> = conn
        .fetch_all(
            &format!(
                "SELECT site, job, task, attempt, seq, tenant, pool, units, wall_ms, placed_at_ms, \
                 price_micro, compute_micro, data_mb, transfer_micro_per_gb, transfer_micro, energy_wh, \
                 co2_g, scu_micro_hours, catalogue_version, rated_at_ms FROM bill_lines{sql} \
                 ORDER BY job, task, attempt, seq, site LIMIT ?"
            ),
            &args,
        )
        .await?;
    rows.into_iter()
        .map(|row| {
            let of = TaskOf(&row.job, row.task);
            Ok(BillLineRow {
                key: BillCursor {
                    task: int("bill_lines.task", of, row.task)?,
                    attempt: int("bill_lines.attempt", of, row.attempt)?,
                    seq: int("bill_lines.seq", of, row.seq)?,
                    job: row.job.clone(),
                    site: row.site,
                },
                units: int("bill_lines.units", of, row.units)?,
                wall_ms: int("bill_lines.wall_ms", of, row.wall_ms)?,
                data_mb: int("bill_lines.data_mb", of, row.data_mb)?,
                energy_wh: int("bill_lines.energy_wh", of, row.energy_wh)?,
                co2_g: int("bill_lines.co2_g", of, row.co2_g)?,
                scu_micro_hours: int("bill_lines.scu_micro_hours", of, row.scu_micro_hours)?,
                tenant: row.tenant,
                pool: row.pool,
                placed_at_ms: row.placed_at_ms,
                price_micro: row.price_micro,
                compute_micro: row.compute_micro,
                transfer_micro_per_gb: row.transfer_micro_per_gb,
                transfer_micro: row.transfer_micro,
                catalogue_version: row.catalogue_version,
                rated_at_ms: row.rated_at_ms,
            })
        })
        .collect()
}

/// The sums over every line `filter` selects (not a page).
pub(crate) async fn totals(conn: &mut impl Conn, filter: &BillFilter) -> Result<BillTotals> {
    let (sql, args) = selection(filter);
    let row: TotalsSelect = conn
        .fetch_one(
            &format!(
                "SELECT COUNT(*) AS lines, CAST(SUM(units * wall_ms) AS BIGINT) AS unit_ms, \
                 CAST(SUM(compute_micro) AS BIGINT) AS compute_micro, \
                 CAST(SUM(transfer_micro) AS BIGINT) AS transfer_micro, \
                 CAST(SUM(energy_wh) AS BIGINT) AS energy_wh, CAST(SUM(co2_g) AS BIGINT) AS co2_g, \
                 CAST(SUM(scu_micro_hours) AS BIGINT) AS scu_micro_hours FROM bill_lines{sql}"
            ),
            &args,
        )
        .await?;
    let of = Named("bill lines of", filter.job.as_deref().unwrap_or("a filter"));
    let sum =
        |column: &str, value: Option<i64>| -> Result<u64> { int(column, of, value.unwrap_or(0)) };
    Ok(BillTotals {
        lines: int("count(bill_lines)", of, row.lines)?,
        unit_ms: sum("sum(units × wall_ms)", row.unit_ms)?,
        // An empty selection sums to NULL: nothing billed is 0 yuan.
        compute_micro: row.compute_micro.unwrap_or(0),
        transfer_micro: row.transfer_micro.unwrap_or(0),
        energy_wh: sum("sum(energy_wh)", row.energy_wh)?,
        co2_g: sum("sum(co2_g)", row.co2_g)?,
        scu_micro_hours: sum("sum(scu_micro_hours)", row.scu_micro_hours)?,
    })
}

#[derive(Debug, sqlx::FromRow)]
struct EarningsSelect {
    site: String,
    pool: String,
    lines: i64,
    unit_ms: i64,
    compute_micro: i64,
    transfer_micro: i64,
}

/// What the pools of `provider`'s sites earned from lines rated in
/// `rated_ms` (all time when `None`), per pool in id order; at most
/// `limit` pools after `after`.
pub(crate) async fn earnings(
    conn: &mut impl Conn,
    provider: &str,
    rated_ms: Option<(i64, i64)>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<EarningsRow>> {
    let (from, to) = rated_ms.unwrap_or((i64::MIN, i64::MAX));
    let rows: Vec<EarningsSelect> = conn
        .fetch_all(
            "SELECT b.site, b.pool, COUNT(*) AS lines, CAST(SUM(b.units * b.wall_ms) AS BIGINT) AS unit_ms, \
             CAST(SUM(b.compute_micro) AS BIGINT) AS compute_micro, \
             CAST(SUM(b.transfer_micro) AS BIGINT) AS transfer_micro \
             FROM bill_lines b JOIN sites s ON s.id = b.site \
             WHERE s.provider = ? AND b.rated_at_ms >= ? AND b.rated_at_ms < ? AND b.pool > ? \
             GROUP BY b.site, b.pool ORDER BY b.pool LIMIT ?",
            &[
                provider.into(),
                from.into(),
                to.into(),
                after.unwrap_or("").into(),
                limit.into(),
            ],
        )
        .await?;
    rows.into_iter()
        .map(|row| {
            let of = Named("pool", &row.pool);
            Ok(EarningsRow {
                lines: int("count(bill_lines)", of, row.lines)?,
                unit_ms: int("sum(units × wall_ms)", of, row.unit_ms)?,
                site: row.site.clone(),
                pool: row.pool.clone(),
                compute_micro: row.compute_micro,
                transfer_micro: row.transfer_micro,
            })
        })
        .collect()
}
