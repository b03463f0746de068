//! Jobs: submit (group-committed, idempotent), list, get, cancel, why,
//! tasks, events, usage.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use suanwang_api::{
    EventView, JobList, JobRef, JobSpec, JobView, TaskView, UsageView, Why, IDEMPOTENCY_KEY_HEADER,
};
use suanwang_core::spec::validate_job;
use suanwang_store::{Audit, Idem, IdemOutcome, JobRow, NewJob, Role};

use crate::auth::{hex, new_id, Caller};
use crate::error::{ApiError, ApiResult};
use crate::json::StrictJson;
use crate::now_ms;
use crate::routes::check_path_id;
use crate::state::AppState;

pub const PAGE_JOBS_MAX: u32 = 1_000;
pub const PAGE_EVENTS_MAX: u32 = 10_000;
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

pub fn view(row: &JobRow) -> ApiResult<JobView> {
    let spec: JobSpec = serde_json::from_str(&row.spec).map_err(ApiError::internal)?;
    Ok(JobView {
        id: row.id.clone(),
        tenant: row.tenant.clone(),
        name: row.name.clone(),
        state: row.state.clone(),
        created_at_ms: row.created_at_ms,
        tasks: row.counts.iter().cloned().collect(),
        spec,
        why: row.why.clone(),
    })
}

/// The job, if the caller may see it: its tenant or the operator.
async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> ApiResult<JobRow> {
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
        .filter(|key| !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_BYTES_MAX)
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

#[utoipa::path(post, path = "/v1/jobs", request_body = JobSpec, params(("Idempotency-Key" = Option<String>, Header)), responses((status = 201, body = JobView), (status = 422, body = suanwang_api::ErrorBody)), tag = "jobs")]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: StrictJson<JobSpec>,
) -> ApiResult<Response> {
    caller.require(Role::Tenant)?;
    let key = idempotency_key(&headers)?;
    let spec = body.value;
    let def = validate_job(&spec, &state.topology())?;
    let _in_flight = InFlight::enter(&state, caller.id(), key.as_ref())?;
    let now = now_ms();
    let id = new_id("job_");
    let view = JobView {
        id: id.clone(),
        tenant: caller.id().to_owned(),
        name: spec.name.clone(),
        state: "pending".into(),
        created_at_ms: now,
        tasks: BTreeMap::from([("pending".to_owned(), def.tasks)]),
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
pub struct ListQuery {
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/jobs", params(ListQuery), responses((status = 200, body = JobList)), tag = "jobs")]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<JobList>> {
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
    if let Some(after) = &query.after {
        check_path_id(after).map_err(|_| ApiError::invalid("after", "not a job id"))?;
    }
    let limit = query.limit.unwrap_or(100).clamp(1, PAGE_JOBS_MAX);
    let rows = state
        .store
        .jobs(tenant, query.after.as_deref(), limit)
        .await?;
    let next = if rows.len() == limit as usize {
        rows.last().map(|row| row.id.clone())
    } else {
        None
    };
    let jobs = rows.iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(JobList { jobs, next }))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path)), responses((status = 200, body = JobView)), tag = "jobs")]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = visible_job(&state, &caller, &id).await?;
    Ok(Json(view(&job)?))
}

#[utoipa::path(get, path = "/v1/jobs/{id}/why", params(("id" = String, Path)), responses((status = 200, body = Why)), tag = "jobs")]
pub async fn why(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Why>> {
    let job = visible_job(&state, &caller, &id).await?;
    let why = match (job.state.as_str(), &job.why) {
        (_, Some(why)) => Some(why.clone()),
        ("pending", None) => Some("waiting for the next scheduling round".to_owned()),
        _ => None,
    };
    Ok(Json(Why {
        job: job.id,
        state: job.state,
        why,
    }))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)), responses((status = 200, body = JobRef)), tag = "jobs")]
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
    if job.cancel_requested || matches!(job.state.as_str(), "succeeded" | "failed" | "cancelled") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("job {id} is already {}", job.state),
        ));
    }
    let now = now_ms();
    let answer = serde_json::to_string(&JobRef {
        id: id.clone(),
        state: "cancelled".into(),
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

#[utoipa::path(get, path = "/v1/jobs/{id}/tasks", params(("id" = String, Path)), responses((status = 200, body = Vec<TaskView>)), tag = "jobs")]
pub async fn tasks(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TaskView>>> {
    let job = visible_job(&state, &caller, &id).await?;
    let rows = state.store.tasks(&job.id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|t| TaskView {
                index: t.index,
                state: t.state,
                attempt: t.attempt,
                pool: t.pool,
                site: t.site,
                exit_code: t.exit_code,
                reason: t.reason,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/jobs/{id}/events", params(("id" = String, Path), EventsQuery), responses((status = 200, body = Vec<EventView>)), tag = "jobs")]
pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Json<Vec<EventView>>> {
    let job = visible_job(&state, &caller, &id).await?;
    let limit = query.limit.unwrap_or(1_000).clamp(1, PAGE_EVENTS_MAX);
    let rows = state
        .store
        .events(&job.id, query.after.unwrap_or(0), limit)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|e| EventView {
                seq: e.seq,
                at_ms: e.at_ms,
                task: e.task,
                kind: e.kind,
                detail: e.detail,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/jobs/{id}/usage", params(("id" = String, Path)), responses((status = 200, body = Vec<UsageView>)), tag = "jobs")]
pub async fn usage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<UsageView>>> {
    let job = visible_job(&state, &caller, &id).await?;
    let rows = state.store.usage(&job.id).await?;
    Ok(Json(
        rows.into_iter()
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
            })
            .collect(),
    ))
}
