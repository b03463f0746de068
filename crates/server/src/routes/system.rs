//! Health, readiness, metrics, the OpenAPI document, and the round export.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use suanwang_store::Role;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::openapi::{Authn, Hidden};
use crate::scheduler;
use crate::state::AppState;

/// Alive: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the database answers.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(states) = state.store.job_states().await {
        for (job_state, count) in states {
            metrics::gauge!("suanwang_jobs", "state" => job_state.as_str()).set(count as f64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The OpenAPI document of this deployment (its regions in the enums).
pub async fn openapi(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(crate::openapi::document(&state.topology()))
}

#[utoipa::path(get, path = "/v1/place/export", responses((status = 200, description = "the current round as a suanwang.placement/v1 problem", content_type = "application/json"), Authn, Hidden), tag = "operator")]
pub async fn export(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<Response> {
    caller.require(Role::Operator)?;
    let input = state.store.round_input().await?;
    let topology = state.topology();
    let round = scheduler::prepare(&topology, input, &mut Default::default(), crate::now_ms());
    let problem = suanwang_core::round::problem(&topology, &round.pools, &round.jobs);
    let text = suanwang_place::format::write_problem(&problem);
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}
