//! Applying the machine's [`Changes`] and recording its events, in the
//! caller's transaction and in the lock order: task rows (their jobs were
//! locked when loaded), job rows, then sites in id order. Statements only
//! store values the machine decided; `COALESCE(?, column)` means "keep".

use std::collections::BTreeMap;

use suanwang_core::machine::{Changes, SiteChange, TaskChange};

use crate::conn::{Arg, Conn};
use crate::sql::{placeholders, to_i64, values, INSERT_ROWS_MAX};
use crate::{AgentStatus, Result};

/// Applies `changes`, their events at `at_ms`.
pub(crate) async fn changes(conn: &mut impl Conn, changes: &Changes, at_ms: i64) -> Result<()> {
    tasks(conn, &changes.tasks).await?;
    for tail in &changes.tails {
        super::insert_never_placed(
            conn,
            &tail.job,
            to_i64(tail.low),
            to_i64(tail.high),
            to_i64(tail.units),
            tail.state,
            tail.reason.as_deref(),
        )
        .await?;
    }
    for job in &changes.jobs {
        let mut set: Vec<&str> = Vec::new();
        let mut args: Vec<Arg<'_>> = Vec::new();
        if let Some(state) = job.state {
            set.push("state = ?");
            args.push(state.as_str().into());
        }
        if job.cancel_requested {
            set.push("cancel_requested = 1");
        }
        if job.clear_why {
            set.push("why = NULL");
        }
        if let Some(n) = job.materialized {
            set.push("tasks_materialized = ?");
            args.push(n.into());
        }
        if set.is_empty() {
            continue;
        }
        args.push((&job.job).into());
        let sql = format!("UPDATE jobs SET {} WHERE id = ?", set.join(", "));
        let done = conn.execute(&sql, &args).await?;
        assert_eq!(done, 1, "job {} changed once", job.job);
    }
    for site in &changes.sites {
        self::site(conn, site).await?;
    }
    for chunk in changes.events.chunks(INSERT_ROWS_MAX / 5) {
        let sql = format!(
            "INSERT INTO events (job, task, at_ms, kind, detail) VALUES {}",
            values(chunk.len(), 5)
        );
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 5);
        for event in chunk {
            args.push((&event.job).into());
            args.push(event.task.map(to_i64).into());
            args.push(at_ms.into());
            args.push(event.kind.as_str().into());
            args.push((&event.detail).into());
        }
        conn.execute(&sql, &args).await?;
    }
    Ok(())
}

/// The task rows' new values, one statement per job and set of values
/// (a cancel of 100,000 tasks is a few hundred statements, not 100,000).
async fn tasks(conn: &mut impl Conn, changes: &[TaskChange]) -> Result<()> {
    type Values<'a> = (
        &'a str,
        &'static str,
        Option<&'a str>,
        Option<i32>,
        Option<&'a str>,
    );
    let mut groups: BTreeMap<Values<'_>, Vec<u64>> = BTreeMap::new();
    for change in changes {
        let key = (
            change.job.as_str(),
            change.state.as_str(),
            change.reason.as_deref(),
            change.exit_code,
            change.output_tail.as_deref(),
        );
        groups.entry(key).or_default().push(change.index);
    }
    for ((job, state, reason, exit_code, output_tail), indexes) in groups {
        for chunk in indexes.chunks(INSERT_ROWS_MAX) {
            let sql = format!(
                "UPDATE tasks SET state = ?, reason = COALESCE(?, reason), \
                 exit_code = COALESCE(?, exit_code), output_tail = COALESCE(?, output_tail) \
                 WHERE job = ? AND idx IN ({})",
                placeholders(chunk.len())
            );
            let mut args: Vec<Arg<'_>> = vec![
                state.into(),
                reason.into(),
                exit_code.map(i64::from).into(),
                output_tail.into(),
                job.into(),
            ];
            args.extend(chunk.iter().map(|idx| Arg::from(*idx)));
            let done = conn.execute(&sql, &args).await?;
            assert_eq!(
                done,
                chunk.len() as u64,
                "every changed task of {job} has a row"
            );
        }
    }
    Ok(())
}

/// One site row's new values.
pub(crate) async fn site(conn: &mut impl Conn, change: &SiteChange) -> Result<()> {
    let mut set: Vec<&str> = Vec::new();
    let mut args: Vec<Arg<'_>> = Vec::new();
    if let Some(healthy) = change.healthy {
        set.push("healthy = ?");
        args.push(healthy.into());
    }
    if let Some(at) = change.lease_expires_at_ms {
        set.push("lease_expires_at_ms = ?");
        args.push(at.into());
    }
    if change.bump_version {
        set.push("version = version + 1");
    }
    if set.is_empty() {
        return Ok(());
    }
    args.push((&change.site).into());
    let sql = format!("UPDATE sites SET {} WHERE id = ?", set.join(", "));
    conn.execute(&sql, &args).await?;
    Ok(())
}

/// What a site's agent said with its heartbeat.
pub(crate) async fn agent_status(
    conn: &mut impl Conn,
    site: &str,
    agent: &AgentStatus,
) -> Result<()> {
    conn.execute(
        "UPDATE sites SET agent_outbox = ?, agent_starts_paused = ? WHERE id = ?",
        &[
            agent.outbox.map(to_i64).into(),
            agent.starts_paused.as_deref().into(),
            site.into(),
        ],
    )
    .await?;
    Ok(())
}
