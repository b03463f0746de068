//! The network topology: regions, latency and transfer prices.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use suanwang_api::TopologySpec;
use suanwang_core::topology::Topology;
use suanwang_store::{Audit, Role};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::now_ms;
use crate::openapi::{Authn, BadBody, Hidden};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/topology", responses((status = 200, body = TopologySpec), Authn), tag = "topology")]
pub async fn show(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<TopologySpec> {
    Json(state.topology().spec())
}

#[utoipa::path(put, path = "/v1/topology", request_body = TopologySpec, responses((status = 200, body = TopologySpec), Authn, Hidden, BadBody), tag = "topology")]
pub async fn replace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<TopologySpec>,
) -> ApiResult<Json<TopologySpec>> {
    caller.require(Role::Operator)?;
    let body = body.read().await?;
    let topology = Topology::validate(&body.value)?;
    // Sites must keep a region: a topology that drops one in use is refused.
    for site in state.store.sites(None).await? {
        if topology.region(&site.region).is_none() {
            return Err(ApiError::invalid(
                "regions",
                format!(
                    "site {} is in region {:?}, which this topology drops",
                    site.name, site.region
                ),
            ));
        }
    }
    let spec = topology.spec();
    let text = serde_json::to_string(&spec).map_err(ApiError::internal)?;
    let audit = Audit {
        at_ms: now_ms(),
        principal: caller.id().to_owned(),
        action: "topology.replace".into(),
        target: "topology".into(),
        detail: format!("{} regions", spec.regions.len()),
    };
    state.store.put_topology(&text, &audit).await?;
    *state.topology.write().expect("topology lock") = Arc::new(topology);
    state.wake.notify_one();
    Ok(Json(spec))
}
