//! The SQL both databases share. `impl_store!` writes the `Store` impl for
//! one backend from the same statements, so the two cannot drift; each
//! backend supplies `Self::sql` (placeholder dialect), its pools, and the
//! parts that truly differ (leadership and how a round is fenced).
//!
//! Conventions both schemas follow: integers are 64-bit, booleans are 0/1
//! integers, times are milliseconds since the epoch, money is integer
//! micro-yuan. Sums are cast to BIGINT so both decode as i64.

use suanwang_core::lifecycle::{job_state, Counts, Task, TaskEvent, TaskState};

use crate::{ItemOutcome, StoreError};

/// Rows per multi-row INSERT: well under both databases' bind limits.
pub const INSERT_ROWS_MAX: usize = 500;

pub fn placeholders(n: usize) -> String {
    let mut text = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            text.push(',');
        }
        text.push('?');
    }
    text
}

pub fn values(rows: usize, columns: usize) -> String {
    let row = format!("({})", placeholders(columns));
    let mut text = String::with_capacity(rows * (row.len() + 1));
    for i in 0..rows {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&row);
    }
    text
}

/// A `sites` row as the site queries select it (`SITE_COLUMNS`).
#[derive(Debug, sqlx::FromRow)]
pub struct SiteSelect {
    pub id: String,
    pub provider: String,
    pub name: String,
    pub region: String,
    pub lease_expires_at_ms: Option<i64>,
    pub healthy: i64,
    pub version: i64,
    pub agent_outbox: Option<i64>,
    pub agent_starts_paused: Option<String>,
}

/// The columns of [`SiteSelect`], in its order.
pub const SITE_COLUMNS: &str =
    "id, provider, name, region, lease_expires_at_ms, healthy, version, \
     agent_outbox, agent_starts_paused";

impl SiteSelect {
    pub fn into_row(self) -> Result<crate::SiteRow, StoreError> {
        let healthy = match self.healthy {
            0 => false,
            1 => true,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "sites.healthy of site {} is {other}, not 0 or 1",
                    self.id
                )))
            }
        };
        let outbox = match self.agent_outbox {
            Some(value) => Some(to_u64(
                &format!("sites.agent_outbox of site {}", self.id),
                value,
            )?),
            None => None,
        };
        Ok(crate::SiteRow {
            id: self.id,
            provider: self.provider,
            name: self.name,
            region: self.region,
            lease_expires_at_ms: self.lease_expires_at_ms,
            healthy,
            version: self.version,
            agent: crate::AgentStatus {
                outbox,
                starts_paused: self.agent_starts_paused,
            },
        })
    }
}

/// A `jobs` row as the job queries select it.
pub type JobSelect = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
);

pub fn to_u64(field: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{field} is negative: {value}")))
}

pub fn to_i64(value: u64) -> i64 {
    i64::try_from(value).expect("counts are bounded far below i64::MAX by validation")
}

/// A unique violation (a name, id or hash taken, possibly by a concurrent
/// writer that passed the same check) as [`StoreError::Conflict`].
pub fn unique_as_conflict<T>(
    result: Result<T, StoreError>,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    match result {
        Err(StoreError::Database(sqlx::Error::Database(error))) if error.is_unique_violation() => {
            Err(StoreError::Conflict(what()))
        }
        other => other,
    }
}

pub fn state(text: &str) -> Result<TaskState, StoreError> {
    TaskState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown task state {text:?}")))
}

pub fn counts_of(rows: &[(String, i64)]) -> Result<Counts, StoreError> {
    let mut counts = Counts::default();
    for (name, n) in rows {
        counts.add(state(name)?, to_u64("count", *n)?);
    }
    Ok(counts)
}

pub fn job_state_name(
    rows: &[(String, i64)],
    cancel_requested: bool,
) -> Result<&'static str, StoreError> {
    Ok(job_state(&counts_of(rows)?, cancel_requested).as_str())
}

/// The never-placed tasks of a job (lazy task rows): every index from
/// `materialized` up to `tasks` is pending and has no row yet.
pub fn tail(tasks: i64, materialized: i64) -> Result<i64, StoreError> {
    if !(0..=tasks).contains(&materialized) {
        return Err(StoreError::Corrupt(format!(
            "job has {materialized} task rows for {tasks} tasks"
        )));
    }
    Ok(tasks - materialized)
}

/// A job's task counts by state, rows and never-placed tail alike, in one
/// statement (one snapshot: a round in between cannot count a task twice).
/// Binds: the job id, twice.
pub const JOB_COUNTS_SQL: &str = "SELECT state, COUNT(*) FROM tasks WHERE job = ? GROUP BY state \
     UNION ALL SELECT 'pending', tasks - tasks_materialized FROM jobs WHERE id = ? AND tasks_materialized < tasks";

/// The rows of [`JOB_COUNTS_SQL`] summed per state, sorted by state.
pub fn job_counts(parts: Vec<(String, i64)>) -> Vec<(String, i64)> {
    let mut by_state: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for (state, n) in parts {
        *by_state.entry(state).or_insert(0) += n;
    }
    by_state.into_iter().collect()
}

/// The one answer for a report about an attempt that is not the reporting
/// site's current one, whether the task moved on, belongs to another site,
/// or does not exist: a site learns nothing about tasks that are not its own.
pub fn not_current(attempt: u32) -> ItemOutcome {
    ItemOutcome::Rejected(format!(
        "attempt {attempt} is not a current attempt at this site (stale, or no such task)"
    ))
}

/// What a status report does to a task of a job of `kind`, by the
/// lifecycle's rules: a service's replica that succeeded is started again.
pub fn status_transition(
    reported: &str,
    kind: &str,
    current: Task,
    current_site: Option<&str>,
    site: &str,
    attempt: u32,
) -> Result<Task, ItemOutcome> {
    let service = kind == "service";
    let event = match reported {
        "running" => TaskEvent::Start,
        "succeeded" if service => TaskEvent::ReplicaEnded,
        "succeeded" => TaskEvent::Succeed,
        "failed" => TaskEvent::Fail,
        other => {
            return Err(ItemOutcome::Rejected(format!(
                "state must be running, succeeded or failed, not {other:?}"
            )))
        }
    };
    if current_site != Some(site) || current.attempt != attempt {
        return Err(not_current(attempt));
    }
    match current.apply(event) {
        Ok(next) => Ok(next),
        Err(_) => {
            let repeat =
                matches!(
                    (reported, current.state),
                    ("running", TaskState::Running | TaskState::Succeeded)
                        | ("succeeded", TaskState::Succeeded)
                        | ("failed", TaskState::Failed | TaskState::Pending)
                ) || (service && reported == "succeeded" && current.state == TaskState::Pending);
            if repeat {
                Err(ItemOutcome::Duplicate)
            } else {
                Err(ItemOutcome::Rejected(format!(
                    "task is {}: {reported} does not apply",
                    current.state.as_str()
                )))
            }
        }
    }
}

/// The `SET` clause that places a pending task row, from a source row `u`
/// with `pool` and `site`: a new attempt, the last one's outcome cleared.
/// A macro so that each backend's statement is one `concat!`ed literal.
macro_rules! place_row_set {
    () => {
        "state = 'placed', attempt = attempt + 1, pool = u.pool, site = u.site, \
         exit_code = NULL, reason = NULL, output_tail = NULL"
    };
}
pub(crate) use place_row_set;

/// The `SET` clause of a round's one change to a `jobs` row, from a source
/// row `u` (`round::JobUpdate`: materialized, placed, has_why, why).
macro_rules! round_job_set {
    () => {
        "tasks_materialized = COALESCE(u.materialized, jobs.tasks_materialized), \
         state = CASE WHEN u.placed AND jobs.state = 'pending' THEN 'placed' ELSE jobs.state END, \
         why = CASE WHEN u.has_why THEN u.why \
                    WHEN u.placed AND jobs.state = 'pending' THEN NULL ELSE jobs.why END"
    };
}
pub(crate) use round_job_set;

/// Writes the `Store` impl for `$store` from the shared SQL.
macro_rules! impl_store {
    ($store:ty, $backend:literal, $db:ty) => {
        impl $store {
            /// Recomputes and stores the state of each job from its tasks.
            async fn refresh_jobs(
                tx: &mut sqlx::Transaction<'_, $db>,
                jobs: &[String],
            ) -> $crate::Result<()> {
                for job in jobs {
                    // Lock the job first, then count: two transactions that
                    // change tasks of one job then settle its state one
                    // after the other, the second seeing the first's tasks.
                    let (cancel,): (i64,) = sqlx::query_as(&Self::sql_owned(format!(
                        "SELECT cancel_requested FROM jobs WHERE id = ?{}",
                        Self::for_update("jobs")
                    )))
                    .bind(job)
                    .fetch_one(&mut **tx)
                    .await?;
                    let parts: Vec<(String, i64)> = sqlx::query_as(&Self::sql($crate::shared::JOB_COUNTS_SQL))
                        .bind(job)
                        .bind(job)
                        .fetch_all(&mut **tx)
                        .await?;
                    let counts = $crate::shared::job_counts(parts);
                    let state = $crate::shared::job_state_name(&counts, cancel != 0)?;
                    sqlx::query(&Self::sql(
                        "UPDATE jobs SET state = ?, why = CASE WHEN ? = 'pending' THEN why ELSE NULL END WHERE id = ? AND state <> ?",
                    ))
                    .bind(state)
                    .bind(state)
                    .bind(job)
                    .bind(state)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            async fn audit_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                audit: &$crate::Audit,
            ) -> $crate::Result<()> {
                sqlx::query(&Self::sql(
                    "INSERT INTO audit (at_ms, principal, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                ))
                .bind(audit.at_ms)
                .bind(&audit.principal)
                .bind(&audit.action)
                .bind(&audit.target)
                .bind(&audit.detail)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn event_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                job: &str,
                task: Option<u64>,
                at_ms: i64,
                kind: &str,
                detail: &str,
            ) -> $crate::Result<()> {
                sqlx::query(&Self::sql(
                    "INSERT INTO events (job, task, at_ms, kind, detail) VALUES (?, ?, ?, ?, ?)",
                ))
                .bind(job)
                .bind(task.map($crate::shared::to_i64))
                .bind(at_ms)
                .bind(kind)
                .bind(detail)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn idem_check(
                tx: &mut sqlx::Transaction<'_, $db>,
                idem: &$crate::Idem,
            ) -> $crate::Result<Option<$crate::IdemOutcome>> {
                let found: Option<(String, i64, String)> = sqlx::query_as(&Self::sql(
                    "SELECT request_hash, status, body FROM idempotency WHERE principal = ? AND key = ?",
                ))
                .bind(&idem.principal)
                .bind(&idem.key)
                .fetch_optional(&mut **tx)
                .await?;
                Ok(found.map(|(hash, status, body)| {
                    if hash == idem.request_hash {
                        $crate::IdemOutcome::Replay {
                            status: u16::try_from(status).unwrap_or(500),
                            body,
                        }
                    } else {
                        $crate::IdemOutcome::Mismatch
                    }
                }))
            }

            /// The earlier outcome under this key, or `None` after claiming
            /// the key for this request. A concurrent request with the same
            /// key waits for the other to commit and then replays it (never a
            /// unique violation that would fail a whole batch).
            async fn idem_claim(
                tx: &mut sqlx::Transaction<'_, $db>,
                idem: &$crate::Idem,
            ) -> $crate::Result<Option<$crate::IdemOutcome>> {
                if let Some(outcome) = Self::idem_check(tx, idem).await? {
                    return Ok(Some(outcome));
                }
                if Self::idem_insert(tx, idem).await? {
                    return Ok(None);
                }
                match Self::idem_check(tx, idem).await? {
                    Some(outcome) => Ok(Some(outcome)),
                    None => Err($crate::StoreError::Corrupt(format!(
                        "idempotency key {:?} conflicts but cannot be read",
                        idem.key
                    ))),
                }
            }

            /// `idem_claim` for a whole batch in a few statements: one
            /// SELECT for keys already stored, one multi-row INSERT for the
            /// rest. A key repeated inside the batch answers like a later
            /// request; a key another server inserted at the same moment
            /// falls back to the one-by-one claim. `None` means "run it".
            async fn idem_claim_batch(
                tx: &mut sqlx::Transaction<'_, $db>,
                jobs: &[$crate::NewJob],
            ) -> $crate::Result<Vec<Option<$crate::IdemOutcome>>> {
                let mut claims: Vec<Option<$crate::IdemOutcome>> = vec![None; jobs.len()];
                let keyed: Vec<(usize, &$crate::Idem)> = jobs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, job)| job.idem.as_ref().map(|idem| (i, idem)))
                    .collect();
                if keyed.is_empty() {
                    return Ok(claims);
                }
                let mut stored: std::collections::HashMap<(String, String), (String, i64, String)> = std::collections::HashMap::new();
                for chunk in keyed.chunks($crate::shared::INSERT_ROWS_MAX / 2) {
                    let sql = Self::sql_owned(format!(
                        "SELECT principal, key, request_hash, status, body FROM idempotency WHERE (principal, key) IN (VALUES {})",
                        $crate::shared::values(chunk.len(), 2)
                    ));
                    let mut query = sqlx::query_as::<_, (String, String, String, i64, String)>(&sql);
                    for (_, idem) in chunk {
                        query = query.bind(&idem.principal).bind(&idem.key);
                    }
                    for (principal, key, hash, status, body) in query.fetch_all(&mut **tx).await? {
                        stored.insert((principal, key), (hash, status, body));
                    }
                }
                let answer = |hash: &str, stored_hash: &str, status: i64, body: &str| {
                    if hash == stored_hash {
                        $crate::IdemOutcome::Replay { status: u16::try_from(status).unwrap_or(500), body: body.to_owned() }
                    } else {
                        $crate::IdemOutcome::Mismatch
                    }
                };
                let mut to_insert: Vec<(usize, &$crate::Idem)> = Vec::with_capacity(keyed.len());
                let mut first_in_batch: std::collections::HashMap<(&str, &str), &$crate::Idem> = std::collections::HashMap::new();
                for (i, idem) in keyed {
                    if let Some((hash, status, body)) = stored.get(&(idem.principal.clone(), idem.key.clone())) {
                        claims[i] = Some(answer(&idem.request_hash, hash, *status, body));
                    } else if let Some(first) = first_in_batch.get(&(idem.principal.as_str(), idem.key.as_str())) {
                        claims[i] = Some(answer(&idem.request_hash, &first.request_hash, i64::from(first.status), &first.body));
                    } else {
                        first_in_batch.insert((idem.principal.as_str(), idem.key.as_str()), idem);
                        to_insert.push((i, idem));
                    }
                }
                let mut inserted: std::collections::HashSet<(String, String)> = std::collections::HashSet::with_capacity(to_insert.len());
                for chunk in to_insert.chunks($crate::shared::INSERT_ROWS_MAX / 6) {
                    let sql = Self::sql_owned(format!(
                        "INSERT INTO idempotency (principal, key, request_hash, status, body, created_at_ms) VALUES {} \
                         ON CONFLICT (principal, key) DO NOTHING RETURNING principal, key",
                        $crate::shared::values(chunk.len(), 6)
                    ));
                    let mut query = sqlx::query_as::<_, (String, String)>(&sql);
                    for (_, idem) in chunk {
                        query = query
                            .bind(&idem.principal)
                            .bind(&idem.key)
                            .bind(&idem.request_hash)
                            .bind(i64::from(idem.status))
                            .bind(&idem.body)
                            .bind(idem.created_at_ms);
                    }
                    inserted.extend(query.fetch_all(&mut **tx).await?);
                }
                for (i, idem) in to_insert {
                    if !inserted.contains(&(idem.principal.clone(), idem.key.clone())) {
                        // Another server stored this key since our SELECT.
                        claims[i] = Self::idem_claim(tx, idem).await?;
                        if claims[i].is_none() {
                            return Err($crate::StoreError::Corrupt(format!("idempotency key {:?} neither stored nor readable", idem.key)));
                        }
                    }
                }
                Ok(claims)
            }

            /// False if the key is taken.
            async fn idem_insert(
                tx: &mut sqlx::Transaction<'_, $db>,
                idem: &$crate::Idem,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(&Self::sql(
                    "INSERT INTO idempotency (principal, key, request_hash, status, body, created_at_ms) VALUES (?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (principal, key) DO NOTHING",
                ))
                .bind(&idem.principal)
                .bind(&idem.key)
                .bind(&idem.request_hash)
                .bind(i64::from(idem.status))
                .bind(&idem.body)
                .bind(idem.created_at_ms)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(done == 1)
            }

            async fn job_row(
                &self,
                row: $crate::shared::JobSelect,
            ) -> $crate::Result<$crate::JobRow> {
                let (id, tenant, name, spec, state, tasks, cancel, created_at_ms, why) = row;
                let parts: Vec<(String, i64)> = sqlx::query_as(&Self::sql($crate::shared::JOB_COUNTS_SQL))
                    .bind(&id)
                    .bind(&id)
                    .fetch_all(self.read())
                    .await?;
                let counts = $crate::shared::job_counts(parts)
                    .into_iter()
                    .map(|(state, n)| Ok((state, $crate::shared::to_u64("count", n)?)))
                    .collect::<$crate::Result<Vec<_>>>()?;
                Ok($crate::JobRow {
                    id,
                    tenant,
                    name,
                    spec,
                    state,
                    tasks: $crate::shared::to_u64("tasks", tasks)?,
                    cancel_requested: cancel != 0,
                    created_at_ms,
                    why,
                    counts,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(self.read()).await?;
                Ok(())
            }

            async fn principal_count(&self, role: $crate::Role) -> $crate::Result<u64> {
                let (n,): (i64,) = sqlx::query_as(&Self::sql("SELECT COUNT(*) FROM principals WHERE role = ?"))
                    .bind(role.as_str())
                    .fetch_one(self.read())
                    .await?;
                $crate::shared::to_u64("count", n)
            }

            async fn create_principal(
                &self,
                principal: &$crate::PrincipalRow,
                token: &$crate::NewToken,
                audit: &$crate::Audit,
            ) -> $crate::Result<()> {
                let result: $crate::Result<()> = async {
                    let mut tx = self.write().begin().await?;
                    let taken: Option<(String,)> = sqlx::query_as(&Self::sql(
                        "SELECT id FROM principals WHERE role = ? AND name = ? AND role <> 'site'",
                    ))
                    .bind(principal.role.as_str())
                    .bind(&principal.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if taken.is_some() {
                        return Err($crate::StoreError::Conflict(format!(
                            "a {} named {:?} exists",
                            principal.role.as_str(),
                            principal.name
                        )));
                    }
                    sqlx::query(&Self::sql(
                        "INSERT INTO principals (id, role, name, parent, created_at_ms) VALUES (?, ?, ?, ?, ?)",
                    ))
                    .bind(&principal.id)
                    .bind(principal.role.as_str())
                    .bind(&principal.name)
                    .bind(&principal.parent)
                    .bind(principal.created_at_ms)
                    .execute(&mut *tx)
                    .await?;
                    Self::token_in(&mut tx, token).await?;
                    Self::audit_in(&mut tx, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                $crate::shared::unique_as_conflict(result, || format!("a {} named {:?} or the id or token exists", principal.role.as_str(), principal.name))
            }

            async fn principal_by_token(
                &self,
                hash: &str,
            ) -> $crate::Result<Option<($crate::PrincipalRow, String)>> {
                let row: Option<(String, String, String, Option<String>, i64, String)> = sqlx::query_as(&Self::sql(
                    "SELECT p.id, p.role, p.name, p.parent, p.created_at_ms, t.id FROM tokens t JOIN principals p ON p.id = t.principal \
                     WHERE t.hash = ? AND t.revoked_at_ms IS NULL",
                ))
                .bind(hash)
                .fetch_optional(self.read())
                .await?;
                row.map(|(id, role, name, parent, created_at_ms, token)| {
                    let role = $crate::Role::parse(&role)
                        .ok_or_else(|| $crate::StoreError::Corrupt(format!("unknown role {role:?}")))?;
                    Ok(($crate::PrincipalRow { id, role, name, parent, created_at_ms }, token))
                })
                .transpose()
            }

            async fn principals(&self, role: $crate::Role) -> $crate::Result<Vec<$crate::PrincipalRow>> {
                let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(&Self::sql(
                    "SELECT id, name, parent, created_at_ms FROM principals WHERE role = ? ORDER BY name",
                ))
                .bind(role.as_str())
                .fetch_all(self.read())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, name, parent, created_at_ms)| $crate::PrincipalRow { id, role, name, parent, created_at_ms })
                    .collect())
            }

            async fn create_token(&self, token: &$crate::NewToken, audit: &$crate::Audit) -> $crate::Result<()> {
                let result: $crate::Result<()> = async {
                    let mut tx = self.write().begin().await?;
                    Self::token_in(&mut tx, token).await?;
                    Self::audit_in(&mut tx, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                $crate::shared::unique_as_conflict(result, || format!("token {:?} or its hash exists", token.id))
            }

            async fn tokens(&self, principal: &str) -> $crate::Result<Vec<$crate::TokenRow>> {
                let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(&Self::sql(
                    "SELECT id, name, created_at_ms, revoked_at_ms FROM tokens WHERE principal = ? ORDER BY created_at_ms, id",
                ))
                .bind(principal)
                .fetch_all(self.read())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, name, created_at_ms, revoked)| $crate::TokenRow { id, name, created_at_ms, revoked: revoked.is_some() })
                    .collect())
            }

            async fn revoke_token(&self, principal: &str, token: &str, audit: &$crate::Audit) -> $crate::Result<bool> {
                let mut tx = self.write().begin().await?;
                let done = sqlx::query(&Self::sql(
                    "UPDATE tokens SET revoked_at_ms = ? WHERE id = ? AND principal = ? AND revoked_at_ms IS NULL",
                ))
                .bind(audit.at_ms)
                .bind(token)
                .bind(principal)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done == 0 {
                    return Ok(false);
                }
                Self::audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn topology(&self) -> $crate::Result<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as("SELECT spec FROM topology WHERE id = 1")
                    .fetch_optional(self.read())
                    .await?;
                Ok(row.map(|(spec,)| spec))
            }

            async fn put_topology(&self, spec: &str, audit: &$crate::Audit) -> $crate::Result<()> {
                let mut tx = self.write().begin().await?;
                sqlx::query(&Self::sql(
                    "INSERT INTO topology (id, spec, updated_at_ms) VALUES (1, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at_ms = excluded.updated_at_ms",
                ))
                .bind(spec)
                .bind(audit.at_ms)
                .execute(&mut *tx)
                .await?;
                Self::audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_site(&self, site: &$crate::SiteRow, token: &$crate::NewToken, audit: &$crate::Audit) -> $crate::Result<()> {
                let result: $crate::Result<()> = async {
                    let mut tx = self.write().begin().await?;
                    let taken: Option<(String,)> = sqlx::query_as(&Self::sql("SELECT id FROM sites WHERE provider = ? AND name = ?"))
                        .bind(&site.provider)
                        .bind(&site.name)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if taken.is_some() {
                        return Err($crate::StoreError::Conflict(format!("a site named {:?} exists", site.name)));
                    }
                    sqlx::query(&Self::sql(
                        "INSERT INTO principals (id, role, name, parent, created_at_ms) VALUES (?, 'site', ?, ?, ?)",
                    ))
                    .bind(&site.id)
                    .bind(&site.name)
                    .bind(&site.provider)
                    .bind(audit.at_ms)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(&Self::sql(
                        "INSERT INTO sites (id, provider, name, region, healthy, version, created_at_ms) VALUES (?, ?, ?, ?, 0, 0, ?)",
                    ))
                    .bind(&site.id)
                    .bind(&site.provider)
                    .bind(&site.name)
                    .bind(&site.region)
                    .bind(audit.at_ms)
                    .execute(&mut *tx)
                    .await?;
                    Self::token_in(&mut tx, token).await?;
                    Self::audit_in(&mut tx, audit).await?;
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                $crate::shared::unique_as_conflict(result, || format!("a site named {:?} or the id or token exists", site.name))
            }

            async fn sites(&self, provider: Option<&str>) -> $crate::Result<Vec<$crate::SiteRow>> {
                let rows: Vec<$crate::shared::SiteSelect> = sqlx::query_as(&Self::sql_owned(format!(
                    "SELECT {} FROM sites WHERE (? IS NULL OR provider = ?) ORDER BY name, id",
                    $crate::shared::SITE_COLUMNS
                )))
                .bind(provider)
                .bind(provider)
                .fetch_all(self.read())
                .await?;
                rows.into_iter().map($crate::shared::SiteSelect::into_row).collect()
            }

            async fn site(&self, id: &str) -> $crate::Result<Option<$crate::SiteRow>> {
                let row: Option<$crate::shared::SiteSelect> = sqlx::query_as(&Self::sql_owned(format!(
                    "SELECT {} FROM sites WHERE id = ?",
                    $crate::shared::SITE_COLUMNS
                )))
                .bind(id)
                .fetch_optional(self.read())
                .await?;
                row.map($crate::shared::SiteSelect::into_row).transpose()
            }

            async fn put_pools(&self, site: &str, pools: &[$crate::PoolRow], audit: &$crate::Audit) -> $crate::Result<()> {
                let mut tx = self.write().begin().await?;
                sqlx::query(&Self::sql("UPDATE pools SET active = 0 WHERE site = ?"))
                    .bind(site)
                    .execute(&mut *tx)
                    .await?;
                for pool in pools {
                    assert_eq!(pool.site, site);
                    sqlx::query(&Self::sql(
                        "INSERT INTO pools (id, site, name, spec, kind, family, capacity, price_micro, active) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) \
                         ON CONFLICT (site, name) DO UPDATE SET spec = excluded.spec, kind = excluded.kind, family = excluded.family, \
                         capacity = excluded.capacity, price_micro = excluded.price_micro, active = 1",
                    ))
                    .bind(&pool.id)
                    .bind(site)
                    .bind(&pool.name)
                    .bind(&pool.spec)
                    .bind(&pool.kind)
                    .bind(&pool.family)
                    .bind($crate::shared::to_i64(pool.capacity))
                    .bind(pool.price_micro)
                    .execute(&mut *tx)
                    .await?;
                }
                Self::audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn pools(&self, site: &str) -> $crate::Result<Vec<$crate::PoolRow>> {
                let rows: Vec<(String, String, String, String, String, String, i64, i64, i64)> = sqlx::query_as(&Self::sql(
                    "SELECT p.id, p.site, p.name, p.spec, p.kind, p.family, p.capacity, p.price_micro, \
                     CAST(COALESCE((SELECT SUM(t.units) FROM tasks t WHERE t.site = p.site AND t.pool = p.id AND t.state IN ('placed', 'running')), 0) AS BIGINT) \
                     FROM pools p WHERE p.site = ? AND p.active = 1 ORDER BY p.name",
                ))
                .bind(site)
                .fetch_all(self.read())
                .await?;
                rows.into_iter()
                    .map(|(id, site, name, spec, kind, family, capacity, price_micro, used)| {
                        Ok($crate::PoolRow {
                            id, site, name, spec, kind, family,
                            capacity: $crate::shared::to_u64("capacity", capacity)?,
                            price_micro,
                            used: $crate::shared::to_u64("used", used)?,
                        })
                    })
                    .collect()
            }

            async fn pool_specs(&self, site: &str) -> $crate::Result<Vec<(String, String, String)>> {
                Ok(sqlx::query_as(&Self::sql("SELECT id, kind, spec FROM pools WHERE site = ? ORDER BY id"))
                    .bind(site)
                    .fetch_all(self.read())
                    .await?)
            }

            async fn heartbeat(&self, site: &str, expires_at_ms: i64, agent: &$crate::AgentStatus) -> $crate::Result<()> {
                sqlx::query(&Self::sql(
                    "UPDATE sites SET lease_expires_at_ms = ?, healthy = 1, agent_outbox = ?, agent_starts_paused = ? \
                     WHERE id = ?",
                ))
                .bind(expires_at_ms)
                .bind(agent.outbox.map($crate::shared::to_i64))
                .bind(agent.starts_paused.as_deref())
                .bind(site)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn extend_leases(&self, expires_at_ms: i64) -> $crate::Result<()> {
                sqlx::query(&Self::sql(
                    "UPDATE sites SET lease_expires_at_ms = ? WHERE healthy = 1 AND lease_expires_at_ms < ?",
                ))
                .bind(expires_at_ms)
                .bind(expires_at_ms)
                .execute(self.write())
                .await?;
                Ok(())
            }

            async fn expire_leases(&self, now_ms: i64) -> $crate::Result<u64> {
                let mut tx = self.write().begin().await?;
                let lapsed: Vec<(String,)> = sqlx::query_as(&Self::sql(
                    "SELECT id FROM sites WHERE healthy = 1 AND lease_expires_at_ms < ? ORDER BY id",
                ))
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?;
                if lapsed.is_empty() {
                    return Ok(0);
                }
                // The jobs of the lapsed sites' tasks, locked first.
                let mut held: Vec<String> = Vec::new();
                for (site,) in &lapsed {
                    let rows: Vec<(String,)> = sqlx::query_as(&Self::sql(
                        "SELECT DISTINCT job FROM tasks WHERE site = ? AND state IN ('placed', 'running')",
                    ))
                    .bind(site)
                    .fetch_all(&mut *tx)
                    .await?;
                    held.extend(rows.into_iter().map(|(job,)| job));
                }
                held.sort_unstable();
                held.dedup();
                Self::lock_jobs(&mut tx, &held.iter().map(String::as_str).collect::<Vec<_>>()).await?;
                let mut affected = 0u64;
                let mut jobs: Vec<String> = Vec::new();
                // Per gang with a lost task: whether one ended for good, and
                // the gang's retries.
                let mut gang_triggers: std::collections::BTreeMap<String, (bool, u32)> = std::collections::BTreeMap::new();
                for (site,) in &lapsed {
                    sqlx::query(&Self::sql("UPDATE sites SET healthy = 0, version = version + 1 WHERE id = ?"))
                        .bind(site)
                        .execute(&mut *tx)
                        .await?;
                    let tasks: Vec<(String, i64, String, i64, i64, String)> = sqlx::query_as(&Self::sql_owned(format!(
                        "SELECT t.job, t.idx, t.state, t.attempt, j.retries, j.kind FROM tasks t JOIN jobs j ON j.id = t.job \
                         WHERE t.site = ? AND t.state IN ('placed', 'running') ORDER BY t.job, t.idx{}",
                        Self::for_update("t")
                    )))
                    .bind(site)
                    .fetch_all(&mut *tx)
                    .await?;
                    for (job, idx, state, attempt, retries, kind) in tasks {
                        let task = suanwang_core::lifecycle::Task {
                            state: $crate::shared::state(&state)?,
                            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                            retries: u32::try_from(retries).unwrap_or(0),
                        };
                        let next = task
                            .apply(suanwang_core::lifecycle::TaskEvent::LeaseLapsed)
                            .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                        sqlx::query(&Self::sql("UPDATE tasks SET state = ?, reason = ? WHERE job = ? AND idx = ?"))
                            .bind(next.state.as_str())
                            .bind(format!("site {site} lost its lease during attempt {attempt}"))
                            .bind(&job)
                            .bind(idx)
                            .execute(&mut *tx)
                            .await?;
                        Self::event_in(&mut tx, &job, Some(idx as u64), now_ms, "lost", &format!("site {site} lost its lease; task is {}", next.state.as_str())).await?;
                        affected += 1;
                        if kind == "gang" {
                            let for_good = next.state != suanwang_core::lifecycle::TaskState::Pending;
                            gang_triggers.entry(job.clone()).or_insert((false, task.retries)).0 |= for_good;
                        }
                        if jobs.last() != Some(&job) {
                            jobs.push(job);
                        }
                    }
                }
                // Gangs with a lost member: their other members follow.
                let mut sites = std::collections::BTreeSet::new();
                for (job, &(for_good, retries)) in &gang_triggers {
                    Self::gang_follow(&mut tx, job, retries, for_good, now_ms, &mut sites).await?;
                }
                Self::bump_sites(&mut tx, &sites).await?;
                jobs.sort();
                jobs.dedup();
                Self::refresh_jobs(&mut tx, &jobs).await?;
                tx.commit().await?;
                Ok(affected)
            }

            async fn assignments(&self, site: &str) -> $crate::Result<(i64, Vec<$crate::AssignmentRow>)> {
                let version = self.site_version(site).await?;
                let rows: Vec<(String, i64, i64, String, String, i64, String)> = sqlx::query_as(&Self::sql(
                    "SELECT t.job, t.idx, t.attempt, t.pool, t.state, t.units, j.spec FROM tasks t JOIN jobs j ON j.id = t.job \
                     WHERE t.site = ? AND t.state IN ('placed', 'running') ORDER BY t.job, t.idx",
                ))
                .bind(site)
                .fetch_all(self.read())
                .await?;
                let rows = rows
                    .into_iter()
                    .map(|(job, task, attempt, pool, state, units, spec)| {
                        Ok($crate::AssignmentRow {
                            job,
                            task: $crate::shared::to_u64("idx", task)?,
                            attempt: u32::try_from(attempt).map_err(|_| $crate::StoreError::Corrupt("attempt".into()))?,
                            pool,
                            state,
                            units: $crate::shared::to_u64("units", units)?,
                            spec,
                        })
                    })
                    .collect::<$crate::Result<Vec<_>>>()?;
                Ok((version, rows))
            }

            async fn site_version(&self, site: &str) -> $crate::Result<i64> {
                let row: Option<(i64,)> = sqlx::query_as(&Self::sql("SELECT version FROM sites WHERE id = ?"))
                    .bind(site)
                    .fetch_optional(self.read())
                    .await?;
                row.map(|(v,)| v).ok_or_else(|| $crate::StoreError::NotFound(format!("site {site}")))
            }

            async fn report(
                &self,
                site: &str,
                statuses: &[$crate::StatusIn],
                usage: &[$crate::UsageIn],
                now_ms: i64,
            ) -> $crate::Result<(Vec<$crate::ItemOutcome>, Vec<$crate::ItemOutcome>)> {
                let mut tx = self.write().begin().await?;
                let mut locked: Vec<&str> = statuses.iter().map(|s| s.job.as_str()).collect();
                locked.sort_unstable();
                locked.dedup();
                Self::lock_jobs(&mut tx, &locked).await?;
                // Usage first: the usage of an attempt that fails in the same
                // report still belongs to that attempt.
                let mut usage_outcomes = Vec::with_capacity(usage.len());
                for record in usage {
                    let task: Option<(i64, Option<String>, Option<String>)> = sqlx::query_as(&Self::sql(
                        "SELECT attempt, site, pool FROM tasks WHERE job = ? AND idx = ?",
                    ))
                    .bind(&record.job)
                    .bind($crate::shared::to_i64(record.task))
                    .fetch_optional(&mut *tx)
                    .await?;
                    let outcome = match task {
                        None => $crate::shared::not_current(record.attempt),
                        Some((attempt, task_site, _)) if task_site.as_deref() != Some(site) || attempt != i64::from(record.attempt) => {
                            $crate::shared::not_current(record.attempt)
                        }
                        Some((_, _, pool)) if pool.as_deref() != Some(record.pool.as_str()) => {
                            $crate::ItemOutcome::Rejected(format!("pool {:?} is not the pool of this attempt", record.pool))
                        }
                        Some(_) => {
                            let done = sqlx::query(&Self::sql(
                                "INSERT INTO usage (site, job, task, attempt, seq, pool, units, wall_ms, recorded_at_ms, device_model, scu_micro_hours, scu_rated, catalogue_version) \
                                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                                 ON CONFLICT DO NOTHING",
                            ))
                            .bind(site)
                            .bind(&record.job)
                            .bind($crate::shared::to_i64(record.task))
                            .bind(i64::from(record.attempt))
                            .bind(i64::from(record.seq))
                            .bind(&record.pool)
                            .bind($crate::shared::to_i64(record.units))
                            .bind($crate::shared::to_i64(record.wall_ms))
                            .bind(now_ms)
                            .bind(&record.device_model)
                            .bind($crate::shared::to_i64(record.scu_micro_hours))
                            .bind(i64::from(record.scu_rated))
                            .bind(&record.catalogue_version)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                            if done == 1 { $crate::ItemOutcome::Accepted } else { $crate::ItemOutcome::Duplicate }
                        }
                    };
                    usage_outcomes.push(outcome);
                }
                let mut status_outcomes = Vec::with_capacity(statuses.len());
                let mut jobs: Vec<String> = Vec::new();
                // Per gang with a task that failed: whether one failed for
                // good, and the gang's retries.
                let mut gang_triggers: std::collections::BTreeMap<String, (bool, u32)> = std::collections::BTreeMap::new();
                for status in statuses {
                    let task: Option<(String, i64, Option<String>, i64, String)> = sqlx::query_as(&Self::sql_owned(format!(
                        "SELECT t.state, t.attempt, t.site, j.retries, j.kind FROM tasks t JOIN jobs j ON j.id = t.job WHERE t.job = ? AND t.idx = ?{}",
                        Self::for_update("t")
                    )))
                    .bind(&status.job)
                    .bind($crate::shared::to_i64(status.task))
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((state, attempt, task_site, retries, kind)) = task else {
                        status_outcomes.push($crate::shared::not_current(status.attempt));
                        continue;
                    };
                    let current = suanwang_core::lifecycle::Task {
                        state: $crate::shared::state(&state)?,
                        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                        retries: u32::try_from(retries).unwrap_or(0),
                    };
                    match $crate::shared::status_transition(&status.state, &kind, current, task_site.as_deref(), site, status.attempt) {
                        Err(outcome) => status_outcomes.push(outcome),
                        Ok(next) => {
                            sqlx::query(&Self::sql(
                                "UPDATE tasks SET state = ?, exit_code = COALESCE(?, exit_code), reason = COALESCE(?, reason), output_tail = COALESCE(?, output_tail) \
                                 WHERE job = ? AND idx = ?",
                            ))
                            .bind(next.state.as_str())
                            .bind(status.exit_code)
                            .bind(&status.reason)
                            .bind(&status.output_tail)
                            .bind(&status.job)
                            .bind($crate::shared::to_i64(status.task))
                            .execute(&mut *tx)
                            .await?;
                            let mut detail = format!("attempt {} {} at site {site}", status.attempt, status.state);
                            if let Some(code) = status.exit_code {
                                detail.push_str(&format!(", exit code {code}"));
                            }
                            if let Some(reason) = &status.reason {
                                detail.push_str(&format!(": {reason}"));
                            }
                            if next.state == suanwang_core::lifecycle::TaskState::Pending {
                                detail.push_str(if status.state == "succeeded" {
                                    "; a service replica: starts again"
                                } else {
                                    "; will retry"
                                });
                            }
                            Self::event_in(&mut tx, &status.job, Some(status.task), now_ms, next.state.as_str(), &detail).await?;
                            if kind == "gang" && matches!(next.state, suanwang_core::lifecycle::TaskState::Pending | suanwang_core::lifecycle::TaskState::Failed) {
                                let for_good = next.state == suanwang_core::lifecycle::TaskState::Failed;
                                gang_triggers.entry(status.job.clone()).or_insert((false, current.retries)).0 |= for_good;
                            }
                            if !jobs.contains(&status.job) {
                                jobs.push(status.job.clone());
                            }
                            status_outcomes.push($crate::ItemOutcome::Accepted);
                        }
                    }
                }
                // Gangs with a failed member: their other members follow.
                let mut sites = std::collections::BTreeSet::new();
                for (job, &(for_good, retries)) in &gang_triggers {
                    Self::gang_follow(&mut tx, job, retries, for_good, now_ms, &mut sites).await?;
                }
                Self::bump_sites(&mut tx, &sites).await?;
                jobs.sort();
                Self::refresh_jobs(&mut tx, &jobs).await?;
                tx.commit().await?;
                Ok((status_outcomes, usage_outcomes))
            }

            async fn submit_batch(&self, jobs: &[$crate::NewJob]) -> $crate::Result<Vec<$crate::IdemOutcome>> {
                let mut tx = self.write().begin().await?;
                let mut outcomes = Vec::with_capacity(jobs.len());
                let mut inserted: Vec<&$crate::NewJob> = Vec::with_capacity(jobs.len());
                let claims = Self::idem_claim_batch(&mut tx, jobs).await?;
                for (job, claim) in jobs.iter().zip(claims) {
                    if let Some(outcome) = claim {
                        outcomes.push(outcome);
                        continue;
                    }
                    outcomes.push($crate::IdemOutcome::Done);
                    inserted.push(job);
                }
                for chunk in inserted.chunks($crate::shared::INSERT_ROWS_MAX / 2) {
                    let sql = format!(
                        "INSERT INTO jobs (id, tenant, name, spec, state, tasks, units, retries, kind, cancel_requested, created_at_ms) VALUES {}",
                        $crate::shared::values(chunk.len(), 11)
                    );
                    let sql = Self::sql_owned(sql);
                    let mut query = sqlx::query(&sql);
                    for job in chunk {
                        query = query
                            .bind(&job.id)
                            .bind(&job.tenant)
                            .bind(&job.name)
                            .bind(&job.spec)
                            .bind("pending")
                            .bind($crate::shared::to_i64(job.tasks))
                            .bind($crate::shared::to_i64(job.units))
                            .bind(i64::from(job.retries))
                            .bind(job.kind.as_str())
                            .bind(0i64)
                            .bind(job.created_at_ms);
                    }
                    query.execute(&mut *tx).await?;
                    let sql = Self::sql_owned(format!(
                        "INSERT INTO audit (at_ms, principal, action, target, detail) VALUES {}",
                        $crate::shared::values(chunk.len(), 5)
                    ));
                    let mut query = sqlx::query(&sql);
                    for job in chunk {
                        query = query
                            .bind(job.audit.at_ms)
                            .bind(&job.audit.principal)
                            .bind(&job.audit.action)
                            .bind(&job.audit.target)
                            .bind(&job.audit.detail);
                    }
                    query.execute(&mut *tx).await?;
                    let sql = Self::sql_owned(format!(
                        "INSERT INTO events (job, task, at_ms, kind, detail) VALUES {}",
                        $crate::shared::values(chunk.len(), 5)
                    ));
                    let mut query = sqlx::query(&sql);
                    for job in chunk {
                        query = query
                            .bind(&job.id)
                            .bind(None::<i64>)
                            .bind(job.created_at_ms)
                            .bind("submitted")
                            .bind(format!("{} tasks", job.tasks));
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }

            async fn idempotent(&self, principal: &str, key: &str) -> $crate::Result<Option<$crate::Idem>> {
                let row: Option<(String, i64, String, i64)> = sqlx::query_as(&Self::sql(
                    "SELECT request_hash, status, body, created_at_ms FROM idempotency WHERE principal = ? AND key = ?",
                ))
                .bind(principal)
                .bind(key)
                .fetch_optional(self.read())
                .await?;
                Ok(row.map(|(request_hash, status, body, created_at_ms)| $crate::Idem {
                    principal: principal.to_owned(),
                    key: key.to_owned(),
                    request_hash,
                    status: u16::try_from(status).unwrap_or(500),
                    body,
                    created_at_ms,
                }))
            }

            async fn prune_idempotency(&self, created_before_ms: i64, limit: u32) -> $crate::Result<u64> {
                assert!(limit > 0, "a prune deletes at least one record");
                let deleted = sqlx::query(&Self::sql(
                    "DELETE FROM idempotency WHERE (principal, key) IN \
                     (SELECT principal, key FROM idempotency WHERE created_at_ms < ? ORDER BY created_at_ms LIMIT ?)",
                ))
                .bind(created_before_ms)
                .bind(i64::from(limit))
                .execute(self.write())
                .await?
                .rows_affected();
                assert!(deleted <= u64::from(limit), "a prune deletes at most its limit");
                Ok(deleted)
            }

            async fn job(&self, id: &str) -> $crate::Result<Option<$crate::JobRow>> {
                let row: Option<$crate::shared::JobSelect> = sqlx::query_as(&Self::sql(
                    "SELECT id, tenant, name, spec, state, tasks, cancel_requested, created_at_ms, why FROM jobs WHERE id = ?",
                ))
                .bind(id)
                .fetch_optional(self.read())
                .await?;
                match row {
                    None => Ok(None),
                    Some(row) => Ok(Some(self.job_row(row).await?)),
                }
            }

            async fn jobs(&self, tenant: Option<&str>, after: Option<&str>, limit: u32) -> $crate::Result<Vec<$crate::JobRow>> {
                let rows: Vec<$crate::shared::JobSelect> = sqlx::query_as(&Self::sql(
                    "SELECT id, tenant, name, spec, state, tasks, cancel_requested, created_at_ms, why FROM jobs \
                     WHERE (? IS NULL OR tenant = ?) AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?",
                ))
                .bind(tenant)
                .bind(tenant)
                .bind(after)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.read())
                .await?;
                let mut jobs = Vec::with_capacity(rows.len());
                for row in rows {
                    jobs.push(self.job_row(row).await?);
                }
                Ok(jobs)
            }

            async fn tasks(&self, job: &str, after: Option<u64>, limit: u32) -> $crate::Result<Vec<$crate::TaskRow>> {
                let first = after.map_or(0, |after| after.saturating_add(1));
                #[allow(clippy::type_complexity)]
                let rows: Vec<(i64, String, i64, Option<String>, Option<String>, Option<i64>, Option<String>, Option<String>, Option<String>, Option<String>)> = sqlx::query_as(&Self::sql(
                    "SELECT t.idx, t.state, t.attempt, t.pool, t.site, t.exit_code, t.reason, s.name, s.region, p.name \
                     FROM tasks t LEFT JOIN sites s ON s.id = t.site LEFT JOIN pools p ON p.id = t.pool \
                     WHERE t.job = ? AND t.idx >= ? ORDER BY t.idx LIMIT ?",
                ))
                .bind(job)
                .bind(i64::try_from(first).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(self.read())
                .await?;
                // Rows exist for a prefix of the indexes; the rest are never
                // placed. A round between the two reads only adds rows this
                // read did not see, listed as never placed a moment longer.
                let total: Option<(i64,)> = sqlx::query_as(&Self::sql(
                    "SELECT tasks FROM jobs WHERE id = ?",
                ))
                .bind(job)
                .fetch_optional(self.read())
                .await?;
                let mut tasks = rows.into_iter()
                    .map(|(index, state, attempt, pool, site, exit_code, reason, site_name, site_region, pool_name)| {
                        Ok($crate::TaskRow {
                            index: $crate::shared::to_u64("idx", index)?,
                            state,
                            attempt: u32::try_from(attempt).map_err(|_| $crate::StoreError::Corrupt("attempt".into()))?,
                            pool,
                            site,
                            exit_code: exit_code.and_then(|code| i32::try_from(code).ok()),
                            reason,
                            site_name,
                            site_region,
                            pool_name,
                        })
                    })
                    .collect::<$crate::Result<Vec<_>>>()?;
                if let Some((total,)) = total {
                    let first_new = tasks.last().map_or(first, |t| t.index + 1);
                    let room = u64::from(limit).saturating_sub(tasks.len() as u64);
                    let total = $crate::shared::to_u64("tasks", total)?;
                    let end = total.min(first_new.saturating_add(room));
                    tasks.extend((first_new..end).map($crate::TaskRow::never_placed));
                }
                Ok(tasks)
            }

            async fn events(&self, job: &str, after_seq: i64, limit: u32) -> $crate::Result<Vec<$crate::EventRow>> {
                let rows: Vec<(i64, String, Option<i64>, i64, String, String)> = sqlx::query_as(&Self::sql(
                    "SELECT seq, job, task, at_ms, kind, detail FROM events WHERE job = ? AND seq > ? ORDER BY seq LIMIT ?",
                ))
                .bind(job)
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(self.read())
                .await?;
                rows.into_iter()
                    .map(|(seq, job, task, at_ms, kind, detail)| {
                        Ok($crate::EventRow {
                            seq,
                            job,
                            task: task.map(|t| $crate::shared::to_u64("task", t)).transpose()?,
                            at_ms,
                            kind,
                            detail,
                        })
                    })
                    .collect()
            }

            async fn cancel(&self, job: &str, idem: Option<&$crate::Idem>, audit: &$crate::Audit) -> $crate::Result<$crate::IdemOutcome> {
                let mut tx = self.write().begin().await?;
                if let Some(idem) = idem {
                    if let Some(outcome) = Self::idem_claim(&mut tx, idem).await? {
                        return Ok(outcome);
                    }
                }
                // The job first, then its tasks, then sites: the one lock
                // order of every writer (ARCHITECTURE.md).
                let found: Option<(i64, i64, i64)> = sqlx::query_as(&Self::sql_owned(format!(
                    "SELECT tasks, tasks_materialized, units FROM jobs WHERE id = ?{}",
                    Self::for_update("jobs")
                )))
                .bind(job)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((tasks, materialized, units)) = found else {
                    return Err($crate::StoreError::NotFound(format!("job {job}")));
                };
                // The sites come from the rows actually cancelled, so a
                // placement that committed meanwhile is seen too.
                let cancelled: Vec<(Option<String>,)> = sqlx::query_as(&Self::sql(
                    "UPDATE tasks SET state = 'cancelled' WHERE job = ? AND state IN ('pending', 'placed', 'running') RETURNING site",
                ))
                .bind(job)
                .fetch_all(&mut *tx)
                .await?;
                // The never-placed tasks get their rows, as cancelled: after a
                // cancel every task of the job has a row and none is pending.
                let tail = $crate::shared::tail(tasks, materialized)?;
                Self::insert_cancelled(&mut tx, job, materialized, tasks, units).await?;
                let done = cancelled.len() + usize::try_from(tail).expect("bounded");
                let sites: std::collections::BTreeSet<String> =
                    cancelled.into_iter().filter_map(|(site,)| site).collect();
                // A finished job stays what it was: nothing left to cancel.
                let changed = sqlx::query(&Self::sql(
                    "UPDATE jobs SET cancel_requested = 1, why = NULL, tasks_materialized = tasks WHERE id = ? AND state NOT IN ('succeeded', 'failed', 'cancelled')",
                ))
                .bind(job)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done == 0 && changed == 0 {
                    Self::audit_in(&mut tx, audit).await?;
                    tx.commit().await?;
                    return Ok($crate::IdemOutcome::Done);
                }
                for site in &sites { // sorted: the lock order
                    sqlx::query(&Self::sql("UPDATE sites SET version = version + 1 WHERE id = ?"))
                        .bind(site)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::event_in(&mut tx, job, None, audit.at_ms, "cancelled", &format!("{done} unfinished tasks cancelled by {}", audit.principal)).await?;
                Self::refresh_jobs(&mut tx, &[job.to_owned()]).await?;
                Self::audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok($crate::IdemOutcome::Done)
            }

            async fn usage(&self, job: &str, after: Option<&$crate::UsageKey>, limit: u32) -> $crate::Result<Vec<$crate::UsageRow>> {
                const COLUMNS: &str = "SELECT u.site, u.job, u.task, u.attempt, u.seq, u.pool, u.units, u.wall_ms, u.device_model, \
                     u.scu_micro_hours, u.scu_rated, u.catalogue_version, s.name, s.region, p.name \
                     FROM usage u LEFT JOIN sites s ON s.id = u.site LEFT JOIN pools p ON p.id = u.pool WHERE u.job = ?";
                const ORDER: &str = " ORDER BY u.task, u.attempt, u.seq, u.site LIMIT ?";
                #[allow(clippy::type_complexity)]
                type Row = (String, String, i64, i64, i64, String, i64, i64, String, i64, i64, String, Option<String>, Option<String>, Option<String>);
                let rows: Vec<Row> = match after {
                    None => sqlx::query_as(&Self::sql_owned(format!("{COLUMNS}{ORDER}")))
                        .bind(job)
                        .bind(i64::from(limit))
                        .fetch_all(self.read())
                        .await?,
                    Some(key) => sqlx::query_as(&Self::sql_owned(format!(
                        "{COLUMNS} AND (u.task, u.attempt, u.seq, u.site) > (?, ?, ?, ?){ORDER}"
                    )))
                    .bind(job)
                    .bind(i64::try_from(key.task).unwrap_or(i64::MAX))
                    .bind(i64::from(key.attempt))
                    .bind(i64::from(key.seq))
                    .bind(&key.site)
                    .bind(i64::from(limit))
                    .fetch_all(self.read())
                    .await?,
                };
                let named = |what: &str, value: Option<String>| {
                    value.ok_or_else(|| $crate::StoreError::Corrupt(format!("usage record of a missing {what}")))
                };
                rows.into_iter()
                    .map(|(site, job, task, attempt, seq, pool, units, wall_ms, device_model, scu_micro_hours, scu_rated, catalogue_version, site_name, site_region, pool_name)| {
                        Ok($crate::UsageRow {
                            site,
                            job,
                            task: $crate::shared::to_u64("task", task)?,
                            attempt: u32::try_from(attempt).map_err(|_| $crate::StoreError::Corrupt("attempt".into()))?,
                            seq: u32::try_from(seq).map_err(|_| $crate::StoreError::Corrupt("seq".into()))?,
                            pool,
                            units: $crate::shared::to_u64("units", units)?,
                            wall_ms: $crate::shared::to_u64("wall_ms", wall_ms)?,
                            device_model,
                            scu_micro_hours: $crate::shared::to_u64("scu_micro_hours", scu_micro_hours)?,
                            scu_rated: scu_rated != 0,
                            catalogue_version,
                            site_name: named("site", site_name)?,
                            site_region: named("site", site_region)?,
                            pool_name: named("pool", pool_name)?,
                        })
                    })
                    .collect()
            }

            async fn job_states(&self) -> $crate::Result<Vec<(String, u64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
                    .fetch_all(self.read())
                    .await?;
                rows.into_iter().map(|(s, n)| Ok((s, $crate::shared::to_u64("count", n)?))).collect()
            }

            async fn try_lead(&self) -> $crate::Result<bool> {
                self.try_lead_impl().await
            }

            async fn round_input(&self) -> $crate::Result<$crate::RoundInput> {
                let pools: Vec<(String, String, String, String, String, String, i64, i64, String, String)> = sqlx::query_as(
                    "SELECT p.id, p.site, p.name, p.spec, p.kind, p.family, p.capacity, p.price_micro, s.region, s.name \
                     FROM pools p JOIN sites s ON s.id = p.site WHERE p.active = 1 AND s.healthy = 1 ORDER BY p.id",
                )
                .fetch_all(self.read())
                .await?;
                let used: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT pool, CAST(SUM(units) AS BIGINT) FROM tasks WHERE state IN ('placed', 'running') AND pool IS NOT NULL GROUP BY pool",
                )
                .fetch_all(self.read())
                .await?;
                let used: std::collections::BTreeMap<String, i64> = used.into_iter().collect();
                let mut site_names = std::collections::BTreeMap::new();
                let pools = pools
                    .into_iter()
                    .map(|(id, site, name, spec, kind, family, capacity, price_micro, region, site_name)| {
                        site_names.entry(site.clone()).or_insert(site_name);
                        let used = used.get(&id).copied().unwrap_or(0);
                        Ok(($crate::PoolRow {
                            id, site, name, spec, kind, family,
                            capacity: $crate::shared::to_u64("capacity", capacity)?,
                            price_micro,
                            used: $crate::shared::to_u64("used", used)?,
                        }, region))
                    })
                    .collect::<$crate::Result<Vec<_>>>()?;
                // Three queries, each served by one partial index: pending
                // task rows, never-placed tails, tasks holding capacity.
                let pending: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT job, COUNT(*) FROM tasks WHERE state = 'pending' GROUP BY job",
                )
                .fetch_all(self.read())
                .await?;
                let active: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT job, COUNT(*) FROM tasks WHERE state IN ('placed', 'running') GROUP BY job",
                )
                .fetch_all(self.read())
                .await?;
                let tails: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT id, tasks - tasks_materialized FROM jobs WHERE tasks_materialized < tasks",
                )
                .fetch_all(self.read())
                .await?;
                let mut counts: std::collections::BTreeMap<String, (u64, u64)> = std::collections::BTreeMap::new();
                for (job, n) in pending.into_iter().chain(tails) {
                    let n = $crate::shared::to_u64("count", n)?;
                    let entry = counts.entry(job).or_insert((0, 0));
                    entry.0 += n;
                    entry.1 += n;
                }
                for (job, n) in active {
                    if let Some(entry) = counts.get_mut(&job) {
                        entry.1 += $crate::shared::to_u64("count", n)?;
                    }
                }
                let mut jobs = Vec::with_capacity(counts.len());
                let ids: Vec<&String> = counts.keys().collect();
                for chunk in ids.chunks($crate::shared::INSERT_ROWS_MAX) {
                    let sql = Self::sql_owned(format!(
                        "SELECT id, tenant, spec FROM jobs WHERE cancel_requested = 0 AND id IN ({}) ORDER BY id",
                        $crate::shared::placeholders(chunk.len())
                    ));
                    let mut query = sqlx::query_as::<_, (String, String, String)>(&sql);
                    for id in chunk {
                        query = query.bind(id.as_str());
                    }
                    for (id, tenant, spec) in query.fetch_all(self.read()).await? {
                        let (pending, live) = counts[&id];
                        jobs.push($crate::WaitingJob { id, tenant, spec, pending, live });
                    }
                }
                Ok($crate::RoundInput { pools, site_names, jobs })
            }

            async fn apply_round(&self, round: &$crate::RoundWrite) -> $crate::Result<()> {
                self.apply_round_impl(round).await
            }

            async fn fail_missed_deadlines(&self, missed: &[$crate::MissedDeadline], now_ms: i64) -> $crate::Result<u64> {
                let mut missed: Vec<&$crate::MissedDeadline> = missed.iter().collect();
                missed.sort_by(|a, b| a.job.cmp(&b.job));
                missed.dedup_by(|a, b| a.job == b.job);
                if missed.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.write().begin().await?;
                // The jobs first, in id order, then their tasks, then sites.
                Self::lock_jobs(&mut tx, &missed.iter().map(|m| m.job.as_str()).collect::<Vec<_>>()).await?;
                let mut failed_total = 0u64;
                let mut jobs: Vec<String> = Vec::with_capacity(missed.len());
                let mut sites = std::collections::BTreeSet::new();
                for m in missed {
                    let found: Option<(i64, i64, i64, i64, String, i64, String)> = sqlx::query_as(&Self::sql_owned(format!(
                        "SELECT tasks, tasks_materialized, units, retries, kind, cancel_requested, state FROM jobs WHERE id = ?{}",
                        Self::for_update("jobs")
                    )))
                    .bind(&m.job)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((tasks, materialized, units, retries, kind, cancel, state)) = found else {
                        continue;
                    };
                    if cancel != 0 || matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
                        continue;
                    }
                    let retries = u32::try_from(retries).map_err(|_| $crate::StoreError::Corrupt(format!("job {} retries {retries}", m.job)))?;
                    let event = suanwang_core::lifecycle::TaskEvent::DeadlineMissed;
                    let reason = suanwang_core::deadline::REASON;
                    let pending: Vec<(i64, String, i64)> = sqlx::query_as(&Self::sql_owned(format!(
                        "SELECT idx, state, attempt FROM tasks WHERE job = ? AND state = 'pending' ORDER BY idx{}",
                        Self::for_update("tasks")
                    )))
                    .bind(&m.job)
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut failed = 0u64;
                    for (idx, state, attempt) in pending {
                        let task = suanwang_core::lifecycle::Task {
                            state: $crate::shared::state(&state)?,
                            attempt: u32::try_from(attempt).map_err(|_| $crate::StoreError::Corrupt(format!("attempt {attempt}")))?,
                            retries,
                        };
                        let next = task.apply(event).map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                        sqlx::query(&Self::sql("UPDATE tasks SET state = ?, reason = ? WHERE job = ? AND idx = ?"))
                            .bind(next.state.as_str())
                            .bind(reason)
                            .bind(&m.job)
                            .bind(idx)
                            .execute(&mut *tx)
                            .await?;
                        failed += 1;
                    }
                    // The never-placed tail gets its rows, in the state the
                    // lifecycle gives a never-placed task.
                    let tail = $crate::shared::tail(tasks, materialized)?;
                    if tail > 0 {
                        let next = suanwang_core::lifecycle::Task::new(retries)
                            .apply(event)
                            .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                        Self::insert_never_placed(&mut tx, &m.job, materialized, tasks, units, next.state.as_str(), Some(reason)).await?;
                        sqlx::query(&Self::sql("UPDATE jobs SET tasks_materialized = tasks WHERE id = ?"))
                            .bind(&m.job)
                            .execute(&mut *tx)
                            .await?;
                        failed += $crate::shared::to_u64("tail", tail)?;
                    }
                    if failed == 0 {
                        continue;
                    }
                    let detail = format!(
                        "{failed} waiting tasks failed: deadline {} can no longer be met",
                        suanwang_core::deadline::format_ms(m.deadline_ms)
                    );
                    Self::event_in(&mut tx, &m.job, None, now_ms, reason, &detail).await?;
                    if kind == "gang" {
                        // A member ended for good: its placed and running peers are cancelled.
                        Self::gang_follow(&mut tx, &m.job, retries, true, now_ms, &mut sites).await?;
                    }
                    failed_total += failed;
                    jobs.push(m.job.clone());
                }
                Self::bump_sites(&mut tx, &sites).await?;
                Self::refresh_jobs(&mut tx, &jobs).await?;
                tx.commit().await?;
                Ok(failed_total)
            }
        }

        impl $store {
            /// Locks the rows of `jobs` (sorted, distinct) in id order: the
            /// first step of every transaction that changes tasks of more
            /// than one job, so that two of them never wait on each other
            /// in opposite orders (ARCHITECTURE.md, "Lock order").
            async fn lock_jobs(
                tx: &mut sqlx::Transaction<'_, $db>,
                ids: &[&str],
            ) -> $crate::Result<()> {
                assert!(ids.windows(2).all(|w| w[0] < w[1]), "job ids sorted and distinct");
                let lock = Self::for_update("jobs");
                if lock.is_empty() {
                    return Ok(()); // one writer: nothing to order
                }
                for chunk in ids.chunks($crate::shared::INSERT_ROWS_MAX) {
                    let sql = Self::sql_owned(format!(
                        "SELECT id FROM jobs WHERE id IN ({}) ORDER BY id{lock}",
                        $crate::shared::placeholders(chunk.len())
                    ));
                    let mut query = sqlx::query(&sql);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    query.execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// A gang runs whole or not at all. After some of `job`'s tasks
            /// went back to pending (`ended_for_good` false) or ended for good
            /// (true) in this transaction, its other placed and running
            /// members follow: back to pending (`Requeue`), or cancelled. The
            /// sites that lose an attempt go into `sites`, whose versions the
            /// caller bumps (sorted, last: the lock order). `job` is a gang with
            /// `retries`, locked by the caller.
            async fn gang_follow(
                tx: &mut sqlx::Transaction<'_, $db>,
                job: &str,
                retries: u32,
                ended_for_good: bool,
                now_ms: i64,
                sites: &mut std::collections::BTreeSet<String>,
            ) -> $crate::Result<()> {
                let live: Vec<(i64, String, i64, Option<String>)> = sqlx::query_as(&Self::sql_owned(format!(
                    "SELECT idx, state, attempt, site FROM tasks WHERE job = ? AND state IN ('placed', 'running') ORDER BY idx{}",
                    Self::for_update("tasks")
                )))
                .bind(job)
                .fetch_all(&mut **tx)
                .await?;
                let event = if ended_for_good {
                    suanwang_core::lifecycle::TaskEvent::Cancel
                } else {
                    suanwang_core::lifecycle::TaskEvent::Requeue
                };
                for (idx, state, attempt, site) in live {
                    let task = suanwang_core::lifecycle::Task {
                        state: $crate::shared::state(&state)?,
                        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                        retries,
                    };
                    let next = task.apply(event).map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                    let reason = if ended_for_good {
                        "cancelled: another member of its gang ended for good"
                    } else {
                        "another member of its gang must run again; the gang is placed again whole"
                    };
                    sqlx::query(&Self::sql("UPDATE tasks SET state = ?, reason = ? WHERE job = ? AND idx = ?"))
                        .bind(next.state.as_str())
                        .bind(reason)
                        .bind(job)
                        .bind(idx)
                        .execute(&mut **tx)
                        .await?;
                    let detail = format!("attempt {attempt} ended with its gang; task is {}", next.state.as_str());
                    Self::event_in(tx, job, Some($crate::shared::to_u64("idx", idx)?), now_ms, "gang", &detail).await?;
                    sites.extend(site);
                }
                Ok(())
            }

            /// Bumps the versions of `sites` (sorted: the lock order), whose
            /// assignments changed.
            async fn bump_sites(
                tx: &mut sqlx::Transaction<'_, $db>,
                sites: &std::collections::BTreeSet<String>,
            ) -> $crate::Result<()> {
                for site in sites {
                    sqlx::query(&Self::sql("UPDATE sites SET version = version + 1 WHERE id = ?"))
                        .bind(site)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// A round's writes, in the caller's transaction: lock the placed
            /// jobs (id order), read them and their pending rows, plan the
            /// row changes (`round::plan`), let the backend write them
            /// set-wise, then events, job states, site versions and the
            /// explanations.
            async fn write_round(
                tx: &mut sqlx::Transaction<'_, $db>,
                round: &$crate::RoundWrite,
            ) -> $crate::Result<()> {
                let mut ids: Vec<&str> = round.placements.iter().map(|p| p.0.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                let mut jobs = std::collections::BTreeMap::new();
                let mut pending: std::collections::BTreeMap<String, Vec<u64>> = std::collections::BTreeMap::new();
                for chunk in ids.chunks($crate::shared::INSERT_ROWS_MAX) {
                    // Locked in id order (the chunks are sorted too).
                    let sql = Self::sql_owned(format!(
                        "SELECT id, tasks, tasks_materialized, units, cancel_requested FROM jobs WHERE id IN ({}) ORDER BY id{}",
                        $crate::shared::placeholders(chunk.len()),
                        Self::for_update("jobs")
                    ));
                    let mut query = sqlx::query_as::<_, (String, i64, i64, i64, i64)>(&sql);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    for (id, tasks, materialized, units, cancel) in query.fetch_all(&mut **tx).await? {
                        $crate::shared::tail(tasks, materialized)?;
                        jobs.insert(id, $crate::round::JobNow {
                            tasks: $crate::shared::to_u64("tasks", tasks)?,
                            materialized: $crate::shared::to_u64("tasks_materialized", materialized)?,
                            units: $crate::shared::to_u64("units", units)?,
                            cancel_requested: cancel != 0,
                        });
                    }
                }
                for chunk in ids.chunks($crate::shared::INSERT_ROWS_MAX) {
                    let sql = Self::sql_owned(format!(
                        "SELECT job, idx FROM tasks WHERE state = 'pending' AND job IN ({}) ORDER BY job, idx",
                        $crate::shared::placeholders(chunk.len())
                    ));
                    let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    for (job, idx) in query.fetch_all(&mut **tx).await? {
                        pending.entry(job).or_default().push($crate::shared::to_u64("idx", idx)?);
                    }
                }
                let plan = $crate::round::plan(&round.placements, &jobs, &pending);
                Self::write_placements(tx, &plan).await?;
                let events: Vec<(&str, String)> = plan
                    .placed
                    .iter()
                    .map(|(&(job, pool, site), count)| (job, format!("{count} tasks on pool {pool} at site {site}")))
                    .collect();
                let updates = plan.job_updates(&round.whys);
                let sites: Vec<&str> = plan.sites.iter().copied().collect();
                Self::write_round_rows(tx, &events, &updates, &sites, round.at_ms).await
            }

            /// Rows for the never-placed tasks `low..high` of `job`, as
            /// cancelled.
            async fn insert_cancelled(
                tx: &mut sqlx::Transaction<'_, $db>,
                job: &str,
                low: i64,
                high: i64,
                units: i64,
            ) -> $crate::Result<()> {
                Self::insert_never_placed(tx, job, low, high, units, "cancelled", None).await
            }

            /// Rows for the never-placed tasks `low..high` of `job`, in
            /// `state` (attempt 0) with `reason`.
            async fn insert_never_placed(
                tx: &mut sqlx::Transaction<'_, $db>,
                job: &str,
                low: i64,
                high: i64,
                units: i64,
                state: &str,
                reason: Option<&str>,
            ) -> $crate::Result<()> {
                if low >= high {
                    return Ok(());
                }
                let done = sqlx::query(&Self::sql(
                    "WITH RECURSIVE r(idx) AS (SELECT CAST(? AS BIGINT) UNION ALL SELECT idx + 1 FROM r WHERE idx + 1 < ?) \
                     INSERT INTO tasks (job, idx, state, attempt, units, reason) SELECT ?, idx, ?, 0, ?, ? FROM r",
                ))
                .bind(low)
                .bind(high)
                .bind(job)
                .bind(state)
                .bind(units)
                .bind(reason)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                assert_eq!(done, u64::try_from(high - low).expect("low < high"), "one row per never-placed task");
                Ok(())
            }

            async fn token_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                token: &$crate::NewToken,
            ) -> $crate::Result<()> {
                sqlx::query(&Self::sql(
                    "INSERT INTO tokens (id, principal, name, hash, created_at_ms) VALUES (?, ?, ?, ?, ?)",
                ))
                .bind(&token.id)
                .bind(&token.principal)
                .bind(&token.name)
                .bind(&token.hash)
                .bind(token.created_at_ms)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store;
