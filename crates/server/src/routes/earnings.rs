//! `GET /v1/earnings`: what a provider's pools earned, from the bill lines
//! of the usage rated on them, less the platform's fee (`platform_fee_bps`),
//! and what its ledger earnings account has been paid.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Deserialize;
use suanwang_api::{EarningsLine, EarningsPage};
use suanwang_core::bill::{chart, period_ms, BPS_PER_ONE};
use suanwang_store::Role;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{Authn, BadQuery, Hidden};
use crate::routes::{bad_query, check_cursor, page_limit, query};
use crate::state::AppState;

pub const PAGE_POOLS_MAX: u32 = 1_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EarningsQuery {
    /// Only lines rated in this UTC month, `YYYY-MM`.
    #[param(
        nullable = false,
        pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"
    )]
    pub period: Option<String>,
    /// The `next` of the previous page: the last pool it listed.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub after: Option<String>,
    /// Pools per page (default and most 1,000).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/earnings", params(EarningsQuery), responses((status = 200, body = EarningsPage), Authn, Hidden, BadQuery), tag = "money")]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<EarningsPage>> {
    caller.require(Role::Provider)?;
    let query: EarningsQuery = query(raw.as_deref())?;
    check_cursor("after", query.after.as_deref())?;
    let limit = page_limit(query.limit, PAGE_POOLS_MAX, PAGE_POOLS_MAX)?;
    let rated_ms = query
        .period
        .as_deref()
        .map(|period| period_ms("period", period))
        .transpose()
        .map_err(|error| bad_query("period", error.message))?;
    let rows = state
        .store
        .earnings(caller.id(), rated_ms, query.after.as_deref(), limit)
        .await?;
    let fee_bps = state.settings.money.fee_bps;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|row| row.pool.clone()))
        .flatten();
    let pools: Vec<EarningsLine> = rows
        .into_iter()
        .map(|row| {
            let fee = row.compute_micro * fee_bps / BPS_PER_ONE;
            EarningsLine {
                site: row.site,
                pool: row.pool,
                lines: row.lines,
                unit_ms: row.unit_ms,
                compute_micro_yuan: row.compute_micro,
                fee_micro_yuan: fee,
                earned_micro_yuan: row.compute_micro - fee,
            }
        })
        .collect();
    let earned = pools.iter().try_fold(0i64, |sum, pool| {
        sum.checked_add(pool.earned_micro_yuan)
            .ok_or_else(|| ApiError::internal("earnings overflow"))
    })?;
    let settled = state
        .store
        .account(&chart::earnings(caller.id()))
        .await?
        .map_or(0, |account| account.balance_micro());
    Ok(Json(EarningsPage {
        provider: caller.id().to_owned(),
        fee_bps,
        pools,
        earned_micro_yuan: earned,
        settled_micro_yuan: settled,
        next,
    }))
}
