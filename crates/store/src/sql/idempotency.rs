//! Idempotency records: the stored answer of a request under its key.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;

use crate::backend::Backend;
use crate::conn::{Arg, Conn};
use crate::sql::{int, values, INSERT_ROWS_MAX};
use crate::{Idem, IdemOutcome, NewJob, Result, StoreError};

/// An idempotency record named for errors.
#[derive(Clone, Copy, Debug)]
struct KeyOf<'a>(&'a str, &'a str);

impl Display for KeyOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key {:?} of principal {}", self.1, self.0)
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Answer {
    request_hash: String,
    status: i64,
    body: String,
}

#[derive(Debug, sqlx::FromRow)]
struct Keyed {
    principal: String,
    key: String,
    request_hash: String,
    status: i64,
    body: String,
}

#[derive(Debug, sqlx::FromRow)]
struct Key {
    principal: String,
    key: String,
}

/// The stored status of `key`, checked.
fn status(principal: &str, key: &str, status: i64) -> Result<u16> {
    int("idempotency.status", KeyOf(principal, key), status)
}

/// The outcome for a request with `hash` when `stored_hash` came first.
fn answer(hash: &str, stored_hash: &str, status: u16, body: &str) -> IdemOutcome {
    if hash == stored_hash {
        IdemOutcome::Replay {
            status,
            body: body.to_owned(),
        }
    } else {
        IdemOutcome::Mismatch
    }
}

async fn check(conn: &mut impl Conn, idem: &Idem) -> Result<Option<IdemOutcome>> {
    let found: Option<Answer> = conn
        .fetch_optional(
            "SELECT request_hash, status, body FROM idempotency WHERE principal = ? AND key = ?",
            &[(&idem.principal).into(), (&idem.key).into()],
        )
        .await?;
    found
        .map(|found| {
            let status = status(&idem.principal, &idem.key, found.status)?;
            Ok(answer(
                &idem.request_hash,
                &found.request_hash,
                status,
                &found.body,
            ))
        })
        .transpose()
}

/// The values of an `idempotency` row, in its column order.
fn record(idem: &Idem) -> [Arg<'_>; 6] {
    [
        (&idem.principal).into(),
        (&idem.key).into(),
        (&idem.request_hash).into(),
        i64::from(idem.status).into(),
        (&idem.body).into(),
        idem.created_at_ms.into(),
    ]
}

/// False if the key is taken.
async fn insert(conn: &mut impl Conn, idem: &Idem) -> Result<bool> {
    let done = conn
        .execute(
            "INSERT INTO idempotency (principal, key, request_hash, status, body, created_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (principal, key) DO NOTHING",
            &record(idem),
        )
        .await?;
    Ok(done == 1)
}

/// The earlier outcome under this key, or `None` after claiming the key
/// for this request. A concurrent request with the same key waits for the
/// other to commit and then replays it (never a unique violation that would
/// fail a whole batch).
pub(crate) async fn claim(conn: &mut impl Conn, idem: &Idem) -> Result<Option<IdemOutcome>> {
    if let Some(outcome) = check(conn, idem).await? {
        return Ok(Some(outcome));
    }
    if insert(conn, idem).await? {
        return Ok(None);
    }
    match check(conn, idem).await? {
        Some(outcome) => Ok(Some(outcome)),
        None => Err(StoreError::Corrupt(format!(
            "idempotency key {:?} conflicts but cannot be read",
            idem.key
        ))),
    }
}

/// [`claim`] for a whole batch in a few statements: one SELECT for keys
/// already stored, one multi-row INSERT for the rest. A key repeated inside
/// the batch answers like a later request; a key another server inserted
/// at the same moment falls back to the one-by-one claim. `None` means "run
/// it".
pub(crate) async fn claim_batch(
    conn: &mut impl Conn,
    jobs: &[NewJob],
) -> Result<Vec<Option<IdemOutcome>>> {
    let mut claims: Vec<Option<IdemOutcome>> = vec![None; jobs.len()];
    let keyed: Vec<(usize, &Idem)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, job)| job.idem.as_ref().map(|idem| (i, idem)))
        .collect();
    if keyed.is_empty() {
        return Ok(claims);
    }
    let mut stored: HashMap<(String, String), (String, u16, String)> = HashMap::new();
    for chunk in keyed.chunks(INSERT_ROWS_MAX / 2) {
        let sql = format!(
            "SELECT principal, key, request_hash, status, body FROM idempotency \
             WHERE (principal, key) IN (VALUES {})",
            values(chunk.len(), 2)
        );
        let args: Vec<_> = chunk
            .iter()
            .flat_map(|(_, idem)| [(&idem.principal).into(), (&idem.key).into()])
            .collect();
        let rows: Vec<Keyed> = conn.fetch_all(&sql, &args).await?;
        for row in rows {
            let status = status(&row.principal, &row.key, row.status)?;
            stored.insert(
                (row.principal, row.key),
                (row.request_hash, status, row.body),
            );
        }
    }
    let mut to_insert: Vec<(usize, &Idem)> = Vec::with_capacity(keyed.len());
    let mut first_in_batch: HashMap<(&str, &str), &Idem> = HashMap::new();
    for (i, idem) in keyed {
        let at = (idem.principal.as_str(), idem.key.as_str());
        if let Some((hash, status, body)) = stored.get(&(idem.principal.clone(), idem.key.clone()))
        {
            claims[i] = Some(answer(&idem.request_hash, hash, *status, body));
        } else if let Some(first) = first_in_batch.get(&at) {
            claims[i] = Some(answer(
                &idem.request_hash,
                &first.request_hash,
                first.status,
                &first.body,
            ));
        } else {
            first_in_batch.insert(at, idem);
            to_insert.push((i, idem));
        }
    }
    let mut inserted: HashSet<(String, String)> = HashSet::with_capacity(to_insert.len());
    for chunk in to_insert.chunks(INSERT_ROWS_MAX / 6) {
        let sql = format!(
            "INSERT INTO idempotency (principal, key, request_hash, status, body, created_at_ms) \
             VALUES {} ON CONFLICT (principal, key) DO NOTHING RETURNING principal, key",
            values(chunk.len(), 6)
        );
        let args: Vec<Arg<'_>> = chunk.iter().flat_map(|(_, idem)| record(idem)).collect();
        let rows: Vec<Key> = conn.fetch_all(&sql, &args).await?;
        inserted.extend(rows.into_iter().map(|row| (row.principal, row.key)));
    }
    for (i, idem) in to_insert {
        if !inserted.contains(&(idem.principal.clone(), idem.key.clone())) {
            // Another server stored this key since our SELECT.
            claims[i] = claim(conn, idem).await?;
            if claims[i].is_none() {
                return Err(StoreError::Corrupt(format!(
                    "idempotency key {:?} neither stored nor readable",
                    idem.key
                )));
            }
        }
    }
    Ok(claims)
}

#[derive(Debug, sqlx::FromRow)]
struct Record {
    request_hash: String,
    status: i64,
    body: String,
    created_at_ms: i64,
}

pub(crate) async fn idempotent(
    store: &impl Backend,
    principal: &str,
    key: &str,
) -> Result<Option<Idem>> {
    let row: Option<Record> = store
        .reader()
        .fetch_optional(
            "SELECT request_hash, status, body, created_at_ms FROM idempotency \
             WHERE principal = ? AND key = ?",
            &[principal.into(), key.into()],
        )
        .await?;
    row.map(|row| {
        Ok(Idem {
            principal: principal.to_owned(),
            key: key.to_owned(),
            request_hash: row.request_hash,
            status: status(principal, key, row.status)?,
            body: row.body,
            created_at_ms: row.created_at_ms,
        })
    })
    .transpose()
}

pub(crate) async fn prune_idempotency(
    store: &impl Backend,
    created_before_ms: i64,
    limit: u32,
) -> Result<u64> {
    assert!(limit > 0, "a prune deletes at least one record");
    let deleted = store
        .writer()
        .execute(
            "DELETE FROM idempotency WHERE (principal, key) IN \
             (SELECT principal, key FROM idempotency WHERE created_at_ms < ? \
              ORDER BY created_at_ms LIMIT ?)",
            &[created_before_ms.into(), limit.into()],
        )
        .await?;
    assert!(
        deleted <= u64::from(limit),
        "a prune deletes at most its limit"
    );
    Ok(deleted)
}
