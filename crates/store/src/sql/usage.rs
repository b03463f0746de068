//! Usage records: what a site's attempts used, rated in standard compute
//! units when reported. Which records a report may store is a rule of the
//! lifecycle ([`lifecycle::report`](super::lifecycle::report)).

use std::collections::HashMap;
use std::fmt::Display;

use crate::backend::Backend;
use crate::conn::{Arg, Conn};
use crate::sql::{flag, int, values, TaskOf};
use crate::{Result, StoreError, UsageIn, UsageKey, UsageRow};

/// Rows of one usage insert: 13 values each, below both databases' limits
/// on bound values (SQLite 32,766, PostgreSQL 65,535).
const STORE_ROWS_MAX: usize = 1_024;

/// `rows` in chunks of at most `max` (a power of two), each a power of two
/// long, largest first: 1,500 rows are 1,024 + 256 + 128 + 64 + 16 + 8 + 4.
///
/// *Rationale.* A statement of `n` rows is its own text; the databases'
/// connections cache a prepared statement per text, and preparing one of
/// a thousand rows costs as much as running it (SQLite: about 2 µs a
/// row). With lengths that are powers of two, a writer prepares at most a
/// dozen texts per statement and reuses them, where chunks of a fixed size
/// would prepare a new one for nearly every last chunk.
pub(crate) fn statement_chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    assert!(max.is_power_of_two(), "a power of two rows at most");
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = max.min(1 << rest.len().ilog2());
        let (chunk, after) = rest.split_at(len);
        rest = after;
        Some(chunk)
    })
}

/// A key that an insert stored, as `RETURNING` gives it back.
#[derive(Debug, sqlx::FromRow)]
struct StoredKey {
    job: String,
    task: i64,
    attempt: i64,
    seq: i64,
}

const INSERT: &str = "INSERT INTO usage (site, job, task, attempt, seq, pool, units, wall_ms, \
     recorded_at_ms, device_model, scu_micro_hours, scu_rated, catalogue_version) VALUES ";

/// Stores `records` of `site`, one statement per 1,024 records or fewer
/// ([`statement_chunks`]); for each record, whether it was stored now
/// (false: its key was stored already, a resend, or it repeats an earlier
/// record of `records`, which alone is stored).
///
/// Every statement is `ON CONFLICT DO NOTHING`, counted, inside a
/// savepoint. When every row was written (the rule: the caller locked the
/// records' jobs and the machine left out the keys stored before), that is
/// the answer. Otherwise the savepoint is rolled back and the records are
/// stored again by statements that say which rows they wrote (`RETURNING`
/// their keys; SQLite 3.35 and later, PostgreSQL).
///
/// *Rationale.* SQLite's driver hands each returned row over between
/// threads: returning every key cost more than storing the rows.
pub(crate) async fn insert_all(
    conn: &mut impl Conn,
    site: &str,
    records: &[&UsageIn],
    now_ms: i64,
) -> Result<Vec<bool>> {
    // The first record of each key is the one sent; a later one with the
    // same key is not stored, as a record after it in a loop would not be.
    let mut first: HashMap<(&str, u64, u32, u32), usize> = HashMap::with_capacity(records.len());
    let mut sent: Vec<usize> = Vec::with_capacity(records.len());
    for (at, record) in records.iter().enumerate() {
        let key = (record.job.as_str(), record.task, record.attempt, record.seq);
        if let std::collections::hash_map::Entry::Vacant(entry) = first.entry(key) {
            entry.insert(at);
            sent.push(at);
        }
    }
    let mut stored = vec![false; records.len()];
    if sent.is_empty() {
        return Ok(stored);
    }
    let args_of = |chunk: &[usize]| -> Vec<Arg<'_>> {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 13);
        for &at in chunk {
            let record = records[at];
            args.extend([
                site.into(),
                record.job.as_str().into(),
                record.task.into(),
                record.attempt.into(),
                record.seq.into(),
                record.pool.as_str().into(),
                record.units.into(),
                record.wall_ms.into(),
                now_ms.into(),
                record.device_model.as_str().into(),
                record.scu_micro_hours.into(),
                record.scu_rated.into(),
                record.catalogue_version.as_str().into(),
            ]);
        }
        args
    };
    conn.execute("SAVEPOINT usage_insert", &[]).await?;
    let mut written = 0u64;
    for chunk in statement_chunks(&sent, STORE_ROWS_MAX) {
        written += conn
            .execute(
                &format!("{INSERT}{} ON CONFLICT DO NOTHING", values(chunk.len(), 13)),
                &args_of(chunk),
            )
            .await?;
    }
    if written == sent.len() as u64 {
        conn.execute("RELEASE SAVEPOINT usage_insert", &[]).await?;
        for at in sent {
            stored[at] = true;
        }
        return Ok(stored);
    }
    // Some key was stored already: which ones, row by row.
    conn.execute("ROLLBACK TO SAVEPOINT usage_insert", &[])
        .await?;
    conn.execute("RELEASE SAVEPOINT usage_insert", &[]).await?;
    for chunk in statement_chunks(&sent, STORE_ROWS_MAX) {
        let rows: Vec<StoredKey> = conn
            .fetch_all(
                &format!(
                    "{INSERT}{} ON CONFLICT DO NOTHING RETURNING job, task, attempt, seq",
                    values(chunk.len(), 13)
                ),
                &args_of(chunk),
            )
            .await?;
        assert!(
            rows.len() <= chunk.len(),
            "an insert returns only rows it wrote"
        );
        for row in rows {
            let of = TaskOf(&row.job, row.task);
            let key = (
                row.job.as_str(),
                int::<u64>("usage.task", of, row.task)?,
                int::<u32>("usage.attempt", of, row.attempt)?,
                int::<u32>("usage.seq", of, row.seq)?,
            );
            let at = *first.get(&key).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "usage insert returned a key it was not given: {of}"
                ))
            })?;
            assert!(!stored[at], "a key is returned once");
            stored[at] = true;
        }
    }
    Ok(stored)
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

#[cfg(test)]
mod tests {
    use super::statement_chunks;

    #[test]
    fn chunks_are_powers_of_two_largest_first() {
        let rows: Vec<u32> = (0..1_500).collect();
        let lens: Vec<usize> = statement_chunks(&rows, 1_024).map(<[u32]>::len).collect();
        assert_eq!(lens, [1_024, 256, 128, 64, 16, 8, 4]);
        let lens: Vec<usize> = statement_chunks(&rows, 512).map(<[u32]>::len).collect();
        assert_eq!(lens, [512, 512, 256, 128, 64, 16, 8, 4]);
        let joined: Vec<u32> = statement_chunks(&rows, 64).flatten().copied().collect();
        assert_eq!(joined, rows);
        assert_eq!(statement_chunks(&rows[..0], 8).count(), 0);
        assert_eq!(
            statement_chunks(&rows[..1], 8)
                .map(<[u32]>::len)
                .collect::<Vec<_>>(),
            [1]
        );
    }
}
