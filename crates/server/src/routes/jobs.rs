//! Jobs: submit (group-committed, idempotent), list, get, cancel, why,
//! tasks, events, usage.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use suanwang_api::{
    EventPage, EventView, JobList, JobRef, JobSpec, JobView, PlacedView, TaskPage, TaskView,
    UsagePage, UsageView, Why, IDEMPOTENCY_KEY_HEADER,
};
use suanwang_core::lifecycle::{JobState, TaskState};
use suanwang_core::spec::validate_job;
use suanwang_store::{Audit, Idem, IdemOutcome, JobRow, NewJob, Role, UsageKey};

use crate::auth::{hex, new_id, Caller};
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::now_ms;
use crate::openapi::{Authn, BadBody, BadKey, BadQuery, Conflict, Hidden};
use crate::routes::{bad_query, check_cursor, check_path_id, page_limit, query, IdPath};
use crate::state::AppState;

pub const PAGE_JOBS_MAX: u32 = 1_000;
pub const PAGE_JOBS_DEFAULT: u32 = 100;
/// Pages of a job's tasks, events and usage records: at most this many
/// items, and this many when `limit` is not given.
pub const PAGE_ITEMS_MAX: u32 = 1_000;
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

pub fn view(row: &JobRow) -> ApiResult<JobView> {
    let spec: JobSpec = serde_json::from_str(&row.spec).map_err(ApiError::internal)?;
    Ok(JobView {
        id: row.id.clone(),
        tenant: row.tenant.clone(),
        name: row.name.clone(),
        state: row.state.into(),
        created_at_ms: row.created_at_ms,
        tasks: row
            .counts
            .iter()
            .map(|&(state, n)| (state.as_str().to_owned(), n))
            .collect(),
        spec,
        why: row.why.clone(),
    })
}

/// The job, if the caller may see it: its tenant or the operator.
pub(crate) async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> ApiResult<JobRow> {
    check_path_id(id)?;
    let job = state
        .store
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    let allowed = match caller.role() {
        Role::Operator => true,
        Role::Tenant => job.tenant == caller.id(),
        Role::Provider | Role::Site => false,
    };
    if allowed {
        Ok(job)
    } else {
        Err(ApiError::not_found(format!("job {id}")))
    }
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty()
                && key.len() <= IDEMPOTENCY_KEY_BYTES_MAX
                && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                format!("must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} visible ASCII characters"),
            )
        })?;
    Ok(Some(key.to_owned()))
}

fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Marks an idempotency key as in flight; a second request with the same key
/// while the first has not answered gets 409.
struct InFlight<'a> {
    state: &'a AppState,
    key: Option<(String, String)>,
}

impl<'a> InFlight<'a> {
    fn enter(
        state: &'a AppState,
        principal: &str,
        key: Option<&String>,
    ) -> ApiResult<InFlight<'a>> {
        let Some(key) = key else {
            return Ok(InFlight { state, key: None });
        };
        let entry = (principal.to_owned(), key.clone());
        if !state
            .in_flight
            .lock()
            .expect("in-flight lock")
            .insert(entry.clone())
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "in-flight",
                "a request with this Idempotency-Key is still in flight",
            ));
        }
        Ok(InFlight {
            state,
            key: Some(entry),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.state
                .in_flight
                .lock()
                .expect("in-flight lock")
                .remove(&key);
        }
    }
}

fn request_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

#[utoipa::path(post, path = "/v1/jobs", request_body = JobSpec, params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x21-\\x7e]{1,255}$")), responses((status = 201, body = JobView), (status = 200, description = "a replay of the first answer to this Idempotency-Key", body = JobView), Authn, Hidden, BadBody, BadKey, Conflict), tag = "jobs")]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<JobSpec>,
) -> ApiResult<Response> {
    caller.require(Role::Tenant)?;
    let body = body.read().await?;
    let key = idempotency_key(&headers)?;
    let spec = body.value;
    let def = validate_job(&spec, &state.topology())?;
    let _in_flight = InFlight::enter(&state, caller.id(), key.as_ref())?;
    let now = now_ms();
    // A deadline that a task started now would miss is refused, unless this
    // is a retry of a submission accepted while it could still be met.
    if let Err(error) = suanwang_core::spec::check_submission(&def, now) {
        if let Some(key) = &key {
            if let Some(found) = state.store.idempotent(caller.id(), key).await? {
                return if found.request_hash == request_hash(&[b"submit", &body.bytes]) {
                    Ok(json_response(found.status, found.body))
                } else {
                    Err(mismatch())
                };
            }
        }
        return Err(error.into());
    }
    let id = new_id("job_");
    let view = JobView {
        id: id.clone(),
        tenant: caller.id().to_owned(),
        name: spec.name.clone(),
        state: JobState::Pending.into(),
        created_at_ms: now,
        tasks: BTreeMap::from([(TaskState::Pending.as_str().to_owned(), def.tasks)]),
        spec: spec.clone(),
        why: None,
    };
    let answer = serde_json::to_string(&view).map_err(ApiError::internal)?;
    let idem = key.map(|key| Idem {
        principal: caller.id().to_owned(),
        key,
        request_hash: request_hash(&[b"submit", &body.bytes]),
        status: 201,
        body: answer.clone(),
        created_at_ms: now,
    });
    let job = NewJob {
        id: id.clone(),
        tenant: caller.id().to_owned(),
        name: spec.name.clone(),
        spec: serde_json::to_string(&spec).map_err(ApiError::internal)?,
        tasks: def.tasks,
        units: def.units,
        retries: def.retries,
        kind: def.kind,
        created_at_ms: now,
        idem,
        audit: Audit {
            at_ms: now,
            principal: caller.id().to_owned(),
            action: "job.submit".into(),
            target: id,
            detail: format!("{} tasks", def.tasks),
        },
    };
    let outcome = state.commit.submit(job).await.map_err(ApiError::internal)?;
    match outcome {
        IdemOutcome::Done => {
            state.wake.notify_one();
            Ok(json_response(201, answer))
        }
        IdemOutcome::Replay { status, body } => Ok(json_response(status, body)),
        IdemOutcome::Mismatch => Err(mismatch()),
    }
}

fn mismatch() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-mismatch",
        "this Idempotency-Key was used with a different request",
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The `next` of the previous page.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub after: Option<String>,
    /// Jobs per page (default 100).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/jobs", params(ListQuery), responses((status = 200, body = JobList), Authn, BadQuery), tag = "jobs")]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<JobList>> {
    let query: ListQuery = query(raw.as_deref())?;
    check_cursor("after", query.after.as_deref())?;
    let limit = page_limit(query.limit, PAGE_JOBS_DEFAULT, PAGE_JOBS_MAX)?;
    let tenant = match caller.role() {
        Role::Operator => None,
        Role::Tenant => Some(caller.id()),
        Role::Provider | Role::Site => {
            return Ok(Json(JobList {
                jobs: Vec::new(),
                next: None,
            }))
        }
    };
    let rows = state
        .store
        .jobs(tenant, query.after.as_deref(), limit)
        .await?;
    let next = next_of(&rows, limit, |row| row.id.clone());
    let jobs = rows.iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(JobList { jobs, next }))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", params(IdPath), responses((status = 200, body = JobView), Authn, Hidden), tag = "jobs")]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = visible_job(&state, &caller, &id).await?;
    Ok(Json(view(&job)?))
}

#[utoipa::path(get, path = "/v1/jobs/{id}/why", params(IdPath), responses((status = 200, body = Why), Authn, Hidden), tag = "jobs")]
pub async fn why(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Why>> {
    let job = visible_job(&state, &caller, &id).await?;
    let mut why = match (job.state, &job.why) {
        (_, Some(why)) => Some(why.clone()),
        (JobState::Pending, None) => Some("waiting for the next scheduling round".to_owned()),
        _ => None,
    };
    // The deadline, as of now: how long is left, or that it passed. Said
    // here rather than by the round, so it is never stale.
    if !matches!(job.state, JobState::Succeeded | JobState::Cancelled) {
        let spec: JobSpec = serde_json::from_str(&job.spec).map_err(ApiError::internal)?;
        let terms = suanwang_core::spec::deadline_terms(&spec).map_err(|error| {
            ApiError::internal(format!("stored spec of job {}: {error}", job.id))
        })?;
        if let Some((deadline_ms, hours_ms)) = terms {
            let waiting = job
                .counts
                .iter()
                .any(|&(state, n)| state == TaskState::Pending && n > 0);
            let verdict = suanwang_core::deadline::verdict(Some(deadline_ms), hours_ms, now_ms());
            if let Some(line) = suanwang_core::deadline::describe(verdict, hours_ms, waiting) {
                // The deadline first: it bounds how long the rest matters.
                why = Some(match why {
                    Some(why) => format!("{line}\n{}", why.trim_end()),
                    None => line,
                });
            }
        }
    }
    Ok(Json(Why {
        job: job.id,
        state: job.state.into(),
        why,
    }))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", params(IdPath, ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x21-\\x7e]{1,255}$")), responses((status = 200, body = JobRef), Authn, Hidden, BadKey, Conflict), tag = "jobs")]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let job = visible_job(&state, &caller, &id).await?;
    let _in_flight = InFlight::enter(&state, caller.id(), key.as_ref())?;
    let hash = request_hash(&[b"cancel", id.as_bytes()]);
    if let Some(key) = &key {
        if let Some(found) = state.store.idempotent(caller.id(), key).await? {
            return if found.request_hash == hash {
                Ok(json_response(found.status, found.body))
            } else {
                Err(mismatch())
            };
        }
    }
    if job.cancel_requested || job.state.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("job {id} is already {}", job.state.as_str()),
        ));
    }
    let now = now_ms();
    let answer = serde_json::to_string(&JobRef {
        id: id.clone(),
        state: JobState::Cancelled.into(),
    })
    .map_err(ApiError::internal)?;
    let idem = key.map(|key| Idem {
        principal: caller.id().to_owned(),
        key,
        request_hash: hash,
        status: 200,
        body: answer.clone(),
        created_at_ms: now,
    });
    let audit = Audit {
        at_ms: now,
        principal: caller.id().to_owned(),
        action: "job.cancel".into(),
        target: id.clone(),
        detail: String::new(),
    };
    // A deadlock with a concurrent round stores nothing: run it again, bounded.
    let mut attempt = 1;
    let outcome = loop {
        match state.store.cancel(&id, idem.as_ref(), &audit).await {
            Err(error)
                if error.is_transient() && attempt < suanwang_store::TRANSIENT_ATTEMPTS_MAX =>
            {
                tracing::info!(%error, attempt, "cancel aborted by a concurrent transaction; again");
                attempt += 1;
            }
            result => break result?,
        }
    };
    match outcome {
        IdemOutcome::Done => {
            state.changed();
            state.wake.notify_one();
            Ok(json_response(200, answer))
        }
        IdemOutcome::Replay { status, body } => Ok(json_response(status, body)),
        IdemOutcome::Mismatch => Err(mismatch()),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TasksQuery {
    /// The `next` of the previous page: the last index it listed.
    #[param(nullable = false, minimum = 0)]
    pub after: Option<i64>,
    /// Tasks per page (default and most 1,000).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `next` for a page of `limit` asked items: the last one's key when the
/// page is full (there may be more), none otherwise.
fn next_of<T, K>(items: &[T], limit: u32, key: impl Fn(&T) -> K) -> Option<K> {
    (items.len() == limit as usize)
        .then(|| items.last().map(key))
        .flatten()
}

#[utoipa::path(get, path = "/v1/jobs/{id}/tasks", params(IdPath, TasksQuery), responses((status = 200, body = TaskPage), Authn, Hidden, BadQuery), tag = "jobs")]
pub async fn tasks(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<TaskPage>> {
    let job = visible_job(&state, &caller, &id).await?;
    let query: TasksQuery = query(raw.as_deref())?;
    let limit = page_limit(query.limit, PAGE_ITEMS_MAX, PAGE_ITEMS_MAX)?;
    let after = query
        .after
        .map(|after| u64::try_from(after).map_err(|_| bad_query("after", "must be >= 0")))
        .transpose()?;
    let rows = state.store.tasks(&job.id, after, limit).await?;
    let next = next_of(&rows, limit, |t| t.index);
    let tasks = rows
        .into_iter()
        .map(|t| TaskView {
            index: t.index,
            state: t.state.into(),
            attempt: t.attempt,
            pool: t.pool,
            site: t.site,
            exit_code: t.exit_code,
            reason: t.reason,
            site_name: t.site_name,
            site_region: t.site_region,
            pool_name: t.pool_name,
            placed: t.placed.map(|placed| PlacedView {
                at_ms: placed.at_ms,
                price_micro_yuan_per_unit_hour: placed.price.price_micro_yuan_per_unit_hour,
                transfer_micro_yuan_per_gb: placed.price.transfer_micro_yuan_per_gb,
                bid_micro_yuan_per_unit_hour: placed.price.bid_micro_yuan_per_unit_hour,
            }),
        })
        .collect();
    Ok(Json(TaskPage { tasks, next }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `next` of the previous page: the last `seq` it listed.
    #[param(nullable = false, minimum = 0)]
    pub after: Option<i64>,
    /// Events per page (default and most 1,000).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/jobs/{id}/events", params(IdPath, EventsQuery), responses((status = 200, body = EventPage), Authn, Hidden, BadQuery), tag = "jobs")]
pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<EventPage>> {
    let job = visible_job(&state, &caller, &id).await?;
    let query: EventsQuery = query(raw.as_deref())?;
    let limit = page_limit(query.limit, PAGE_ITEMS_MAX, PAGE_ITEMS_MAX)?;
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(bad_query("after", "must be >= 0"));
    }
    let rows = state.store.events(&job.id, after, limit).await?;
    let next = next_of(&rows, limit, |e| e.seq);
    let events = rows
        .into_iter()
        .map(|e| EventView {
            seq: e.seq,
            at_ms: e.at_ms,
            task: e.task,
            kind: e.kind.into(),
            detail: e.detail,
        })
        .collect();
    Ok(Json(EventPage { events, next }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The `next` of the previous page: `TASK-ATTEMPT-SEQ-SITE`.
    #[param(
        nullable = false,
        pattern = "^[0-9]{1,19}-[0-9]{1,10}-[0-9]{1,10}-[A-Za-z0-9_-]{1,128}$"
    )]
    pub after: Option<String>,
    /// Records per page (default and most 1,000).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The cursor of a usage page: the key of its last record.
fn usage_cursor(key: &UsageKey) -> String {
    format!("{}-{}-{}-{}", key.task, key.attempt, key.seq, key.site)
}

fn parse_usage_cursor(text: &str) -> ApiResult<UsageKey> {
    let bad = || {
        bad_query(
            "after",
            "must be TASK-ATTEMPT-SEQ-SITE, the `next` of a page",
        )
    };
    let mut parts = text.splitn(4, '-');
    let mut number = || parts.next().and_then(|part| part.parse::<u64>().ok());
    let (Some(task), Some(attempt), Some(seq)) = (number(), number(), number()) else {
        return Err(bad());
    };
    let site = parts.next().ok_or_else(bad)?;
    check_path_id(site).map_err(|_| bad())?;
    // Past the largest attempt or seq there is nothing of that task left:
    // the largest stands for any bigger one.
    Ok(UsageKey {
        task,
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
        seq: u32::try_from(seq).unwrap_or(u32::MAX),
        site: site.to_owned(),
    })
}

#[utoipa::path(get, path = "/v1/jobs/{id}/usage", params(IdPath, UsageQuery), responses((status = 200, body = UsagePage), Authn, Hidden, BadQuery), tag = "jobs")]
pub async fn usage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<UsagePage>> {
    let job = visible_job(&state, &caller, &id).await?;
    let query: UsageQuery = query(raw.as_deref())?;
    let limit = page_limit(query.limit, PAGE_ITEMS_MAX, PAGE_ITEMS_MAX)?;
    let after = query.after.as_deref().map(parse_usage_cursor).transpose()?;
    let rows = state.store.usage(&job.id, after.as_ref(), limit).await?;
    let next = next_of(&rows, limit, |u| {
        usage_cursor(&UsageKey {
            task: u.task,
            attempt: u.attempt,
            seq: u.seq,
            site: u.site.clone(),
        })
    });
    let usage = rows
        .into_iter()
        .map(|u| UsageView {
            job: u.job,
            task: u.task,
            attempt: u.attempt,
            seq: u.seq,
            site: u.site,
            pool: u.pool,
            units: u.units,
            wall_ms: u.wall_ms,
            device_model: u.device_model,
            scu_micro_hours: u.scu_micro_hours,
            scu_rated: u.scu_rated,
            catalogue_version: u.catalogue_version,
            site_name: Some(u.site_name),
            site_region: Some(u.site_region),
            pool_name: Some(u.pool_name),
        })
        .collect();
    Ok(Json(UsagePage { usage, next }))
}
