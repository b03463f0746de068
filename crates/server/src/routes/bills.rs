//! `GET /v1/bills`: a tenant's bill lines (the operator's: everyone's),
//! for one job or one month, a page at a time, with the totals of the whole
//! selection. Rating happened when each usage record was stored.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Deserialize;
use suanwang_api::{BillLine, BillPage, BillTotals};
use suanwang_core::bill::period_ms;
use suanwang_store::{BillCursor, BillFilter, BillLineRow, Role};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{Authn, BadQuery, Hidden};
use crate::routes::jobs::visible_job;
use crate::routes::{bad_query, check_path_id, page_limit, query};
use crate::state::AppState;

pub const PAGE_LINES_DEFAULT: u32 = 1_000;
pub const PAGE_LINES_MAX: u32 = 1_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BillQuery {
    /// Only this job's lines.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub job: Option<String>,
    /// Only lines rated in this UTC month, `YYYY-MM`.
    #[param(
        nullable = false,
        pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"
    )]
    pub period: Option<String>,
    /// The `next` of the previous page: `job.task.attempt.seq.site`.
    #[param(
        nullable = false,
        pattern = "^[A-Za-z0-9_-]{1,128}\\.[0-9]{1,19}\\.[0-9]{1,9}\\.[0-9]{1,9}\\.[A-Za-z0-9_-]{1,128}$"
    )]
    pub after: Option<String>,
    /// Lines per page (default and most 1,000).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `job.task.attempt.seq.site`: ids hold no dots.
fn cursor_text(key: &BillCursor) -> String {
    format!(
        "{}.{}.{}.{}.{}",
        key.job, key.task, key.attempt, key.seq, key.site
    )
}

fn parse_cursor(text: &str) -> ApiResult<BillCursor> {
    let bad = || bad_query("after", "is not a `next` this endpoint gave");
    let parts: Vec<&str> = text.split('.').collect();
    let [job, task, attempt, seq, site] = parts[..] else {
        return Err(bad());
    };
    check_path_id(job).map_err(|_| bad())?;
    check_path_id(site).map_err(|_| bad())?;
    Ok(BillCursor {
        job: job.to_owned(),
        task: task.parse().map_err(|_| bad())?,
        attempt: attempt.parse().map_err(|_| bad())?,
        seq: seq.parse().map_err(|_| bad())?,
        site: site.to_owned(),
    })
}

#[utoipa::path(get, path = "/v1/bills", params(BillQuery), responses((status = 200, body = BillPage), Authn, Hidden, BadQuery), tag = "money")]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<BillPage>> {
    let tenant = match caller.role() {
        Role::Tenant => Some(caller.id().to_owned()),
        Role::Operator => None,
        // Providers see earnings, not bills.
        Role::Provider | Role::Site => return Err(ApiError::not_found("bills")),
    };
    let query: BillQuery = query(raw.as_deref())?;
    let limit = page_limit(query.limit, PAGE_LINES_DEFAULT, PAGE_LINES_MAX)?;
    if let Some(job) = &query.job {
        visible_job(&state, &caller, job).await?;
    }
    let rated_ms = query
        .period
        .as_deref()
        .map(|period| period_ms("period", period))
        .transpose()
        .map_err(|error| bad_query("period", error.message))?;
    let after = query.after.as_deref().map(parse_cursor).transpose()?;
    let filter = BillFilter {
        tenant,
        job: query.job,
        rated_ms,
    };
    let rows = state
        .store
        .bill_lines(&filter, after.as_ref(), limit)
        .await?;
    let totals = state.store.bill_totals(&filter).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|row| cursor_text(&row.key)))
        .flatten();
    let total = totals
        .compute_micro
        .checked_add(totals.transfer_micro)
        .ok_or_else(|| ApiError::internal("bill total overflows"))?;
    Ok(Json(BillPage {
        lines: rows.into_iter().map(line).collect(),
        totals: BillTotals {
            lines: totals.lines,
            unit_ms: totals.unit_ms,
            scu_micro_hours: totals.scu_micro_hours,
            compute_micro_yuan: totals.compute_micro,
            transfer_micro_yuan: totals.transfer_micro,
            total_micro_yuan: total,
            energy_wh: totals.energy_wh,
            co2_g: totals.co2_g,
        },
        next,
    }))
}

fn line(row: BillLineRow) -> BillLine {
    BillLine {
        site: row.key.site,
        job: row.key.job,
        task: row.key.task,
        attempt: row.key.attempt,
        seq: row.key.seq,
        pool: row.pool,
        units: row.units,
        wall_ms: row.wall_ms,
        scu_micro_hours: row.scu_micro_hours,
        catalogue_version: row.catalogue_version,
        placed_at_ms: row.placed_at_ms,
        price_micro_yuan_per_unit_hour: row.price_micro,
        compute_micro_yuan: row.compute_micro,
        data_mb: row.data_mb,
        transfer_micro_yuan_per_gb: row.transfer_micro_per_gb,
        transfer_micro_yuan: row.transfer_micro,
        energy_wh: row.energy_wh,
        co2_g: row.co2_g,
        rated_at_ms: row.rated_at_ms,
    }
}
