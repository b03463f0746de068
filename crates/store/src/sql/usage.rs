//! Usage records: what a site's attempts used, rated in standard compute
//! units when reported. Which records a report may store is a rule of the
//! lifecycle ([`lifecycle::report`](super::lifecycle::report)).

use std::fmt::Display;

use crate::backend::Backend;
use crate::conn::{Arg, Conn};
use crate::sql::{flag, int};
use crate::{Result, StoreError, UsageIn, UsageKey, UsageRow};

/// Stores `record` of `site`; false if it was already stored (a resend).
pub(crate) async fn insert(
    conn: &mut impl Conn,
    site: &str,
    record: &UsageIn,
    now_ms: i64,
) -> Result<bool> {
    let done = conn
        .execute(
            "INSERT INTO usage (site, job, task, attempt, seq, pool, units, wall_ms, recorded_at_ms, \
             device_model, scu_micro_hours, scu_rated, catalogue_version) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
            &[
                site.into(),
                (&record.job).into(),
                record.task.into(),
                record.attempt.into(),
                record.seq.into(),
                (&record.pool).into(),
                record.units.into(),
                record.wall_ms.into(),
                now_ms.into(),
                (&record.device_model).into(),
                record.scu_micro_hours.into(),
                record.scu_rated.into(),
                (&record.catalogue_version).into(),
            ],
        )
        .await?;
    Ok(done == 1)
}

#[derive(Debug, sqlx::FromRow)]
struct UsageSelect {
    site: String,
    job: String,
    task: i64,
    attempt: i64,
    seq: i64,
    pool: String,
    units: i64,
    wall_ms: i64,
    device_model: String,
    scu_micro_hours: i64,
    scu_rated: i64,
    catalogue_version: String,
    site_name: Option<String>,
    site_region: Option<String>,
    pool_name: Option<String>,
}

/// A usage record named for errors.
#[derive(Clone, Copy, Debug)]
struct RecordOf<'a>(&'a UsageSelect);

impl Display for RecordOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.0;
        write!(
            f,
            "site {} job {} task {} attempt {} seq {}",
            r.site, r.job, r.task, r.attempt, r.seq
        )
    }
}

const COLUMNS: &str =
    "SELECT u.site, u.job, u.task, u.attempt, u.seq, u.pool, u.units, u.wall_ms, u.device_model, \
     u.scu_micro_hours, u.scu_rated, u.catalogue_version, \
     s.name AS site_name, s.region AS site_region, p.name AS pool_name \
     FROM usage u LEFT JOIN sites s ON s.id = u.site LEFT JOIN pools p ON p.id = u.pool \
     WHERE u.job = ?";
const ORDER: &str = " ORDER BY u.task, u.attempt, u.seq, u.site LIMIT ?";

/// A page of `job`'s usage records in key order, after `after`.
pub(crate) async fn usage(
    store: &impl Backend,
    job: &str,
    after: Option<&UsageKey>,
    limit: u32,
) -> Result<Vec<UsageRow>> {
    let rows: Vec<UsageSelect> = match after {
        None => {
            store
                .reader()
                .fetch_all(&format!("{COLUMNS}{ORDER}"), &[job.into(), limit.into()])
                .await?
        }
        Some(key) => {
            let args: [Arg<'_>; 6] = [
                job.into(),
                i64::try_from(key.task).unwrap_or(i64::MAX).into(),
                key.attempt.into(),
                key.seq.into(),
                (&key.site).into(),
                limit.into(),
            ];
            store
                .reader()
                .fetch_all(
                    &format!(
                        "{COLUMNS} AND (u.task, u.attempt, u.seq, u.site) > (?, ?, ?, ?){ORDER}"
                    ),
                    &args,
                )
                .await?
        }
    };
    rows.into_iter().map(into_row).collect()
}

fn into_row(mut row: UsageSelect) -> Result<UsageRow> {
    let (site_name, site_region, pool_name) = (
        row.site_name.take(),
        row.site_region.take(),
        row.pool_name.take(),
    );
    let of = RecordOf(&row);
    let named = |what: &str, value: Option<String>| {
        value.ok_or_else(|| {
            StoreError::Corrupt(format!("usage record of {of} names a missing {what}"))
        })
    };
    Ok(UsageRow {
        task: int("usage.task", of, row.task)?,
        attempt: int("usage.attempt", of, row.attempt)?,
        seq: int("usage.seq", of, row.seq)?,
        units: int("usage.units", of, row.units)?,
        wall_ms: int("usage.wall_ms", of, row.wall_ms)?,
        scu_micro_hours: int("usage.scu_micro_hours", of, row.scu_micro_hours)?,
        scu_rated: flag("usage.scu_rated", of, row.scu_rated)?,
        site_name: named("site", site_name)?,
        site_region: named("site", site_region)?,
        pool_name: named("pool", pool_name)?,
        site: row.site,
        job: row.job,
        pool: row.pool,
        device_model: row.device_model,
        catalogue_version: row.catalogue_version,
    })
}
