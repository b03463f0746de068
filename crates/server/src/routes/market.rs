//! `GET /v1/market`: the network's pools, their prices and free capacity,
//! for any signed-in caller. Market data is public (finding resources is
//! the point of a national platform); it names no job and no tenant.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Deserialize;
use suanwang_api::{MarketPage, MarketPool, PoolSpec, ResourceKind};
use suanwang_core::metering;
use suanwang_core::price::{per_scu_hour, PoolPrice};
use suanwang_core::spec::resource_kind;
use suanwang_store::{MarketFilter, MarketRow};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::now_ms;
use crate::openapi::{Authn, BadQuery};
use crate::routes::{bad_query, check_cursor, page_limit, query};
use crate::state::AppState;

/// Pools per page: the default, and the most.
pub const PAGE_POOLS_DEFAULT: u32 = 100;
pub const PAGE_POOLS_MAX: u32 = 1_000;
/// Longest family name a filter may carry (pool families are names).
const FAMILY_BYTES_MAX: usize = 64;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MarketQuery {
    /// Only pools of this kind.
    #[param(nullable = false)]
    pub kind: Option<ResourceKind>,
    /// Only pools of this chip family (e.g. `x86`, `nvidia`, `ascend`).
    #[param(nullable = false, min_length = 1, max_length = 64)]
    pub family: Option<String>,
    /// Only pools of sites in this region (a topology region id).
    #[param(nullable = false)]
    pub region: Option<String>,
    /// The `next` of the previous page: the last pool id it listed.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub after: Option<String>,
    /// Pools per page (default 100, most 1,000).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/market", params(MarketQuery), responses((status = 200, body = MarketPage), Authn, BadQuery), tag = "market")]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<MarketPage>> {
    let query: MarketQuery = query(raw.as_deref())?;
    check_cursor("after", query.after.as_deref())?;
    let limit = page_limit(query.limit, PAGE_POOLS_DEFAULT, PAGE_POOLS_MAX)?;
    if let Some(family) = &query.family {
        if family.is_empty() || family.len() > FAMILY_BYTES_MAX {
            return Err(bad_query(
                "family",
                format!("must be 1 to {FAMILY_BYTES_MAX} bytes"),
            ));
        }
    }
    if let Some(region) = &query.region {
        state
            .topology()
            .require_region("region", region)
            .map_err(|error| bad_query("region", error.message))?;
    }
    let filter = MarketFilter {
        kind: query.kind.map(resource_kind),
        family: query.family,
        region: query.region,
    };
    let rows = state
        .store
        .market(&filter, query.after.as_deref(), limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|row| row.pool.clone()))
        .flatten();
    let catalogue = metering::shipped().at(now_ms());
    let pools = rows
        .into_iter()
        .map(|row| view(row, catalogue))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(MarketPage { pools, next }))
}

fn view(row: MarketRow, catalogue: &metering::Catalogue) -> ApiResult<MarketPool> {
    let spec: PoolSpec = serde_json::from_str(&row.spec).map_err(ApiError::internal)?;
    let market = match row.clearing {
        Some((clearing, _)) => PoolPrice {
            list_micro_yuan_per_unit_hour: row.list_micro,
            clearing_micro_yuan_per_unit_hour: clearing,
        }
        .market_micro_yuan_per_unit_hour(),
        None => row.list_micro,
    };
    // Rated only where the catalogue knows the model as this kind of unit.
    let scu = catalogue
        .lookup(&spec.device_model)
        .filter(|model| model.kind == row.kind)
        .map(|model| model.scu)
        .filter(|scu| scu.num > 0);
    Ok(MarketPool {
        pool: row.pool,
        pool_name: row.pool_name,
        site: row.site,
        site_name: row.site_name,
        region: row.region,
        healthy: row.healthy,
        kind: spec.kind,
        family: row.family,
        device_model: spec.device_model,
        capacity_units: row.capacity,
        free_units: row.capacity.saturating_sub(row.used),
        list_micro_yuan_per_unit_hour: row.list_micro,
        clearing_micro_yuan_per_unit_hour: row.clearing.map(|(clearing, _)| clearing),
        priced_at_ms: row.clearing.map(|(_, at_ms)| at_ms),
        market_micro_yuan_per_unit_hour: market,
        scu_per_unit: scu.map(|scu| scu.decimal(6)),
        market_micro_yuan_per_scu_hour: scu.and_then(|scu| per_scu_hour(market, scu)),
    })
}
