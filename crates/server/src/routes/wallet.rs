//! Wallets: a tenant sees its own (`GET /v1/wallet`); the operator sees
//! any tenant's, tops it up and grants credit
//! (`/v1/tenants/{id}/wallet…`). Every movement is a ledger transfer
//! (`core::bill::chart`); the accounts are opened on first use.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use suanwang_api::{CreditLimit, TopUp, WalletView};
use suanwang_core::bill::chart;
use suanwang_ledger::{codes, Applied, Transfer, TransferError, TransferId, AMOUNT_MICRO_MAX};
use suanwang_store::Role;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::now_ms;
use crate::openapi::{Authn, BadBody, Conflict, Hidden};
use crate::routes::{check_path_id, IdPath};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/wallet", responses((status = 200, body = WalletView), Authn, Hidden), tag = "money")]
pub async fn own(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<WalletView>> {
    caller.require(Role::Tenant)?;
    Ok(Json(wallet(&state, caller.id()).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{id}/wallet", params(IdPath), responses((status = 200, body = WalletView), Authn, Hidden), tag = "money")]
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WalletView>> {
    let tenant = operator_tenant(&state, &caller, &id).await?;
    Ok(Json(wallet(&state, &tenant).await?))
}

#[utoipa::path(post, path = "/v1/tenants/{id}/wallet/topups", params(IdPath), request_body = TopUp, responses((status = 200, body = WalletView), Authn, Hidden, BadBody, Conflict), tag = "money")]
pub async fn topup(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<TopUp>,
) -> ApiResult<Json<WalletView>> {
    let tenant = operator_tenant(&state, &caller, &id).await?;
    let body = body.read().await?.value;
    check_path_id(&body.topup_id)
        .map_err(|_| ApiError::invalid("topup_id", "must be 1 to 64 of A-Z a-z 0-9 _ -"))?;
    if body.topup_id.len() > 64 {
        return Err(ApiError::invalid(
            "topup_id",
            "must be 1 to 64 of A-Z a-z 0-9 _ -",
        ));
    }
    if !(1..=AMOUNT_MICRO_MAX).contains(&body.amount_micro_yuan) {
        return Err(ApiError::invalid(
            "amount_micro_yuan",
            format!("must be 1 to {AMOUNT_MICRO_MAX}"),
        ));
    }
    let now = now_ms();
    open_accounts(&state, &tenant, now).await?;
    // The id names the tenant too: one operator's key is not another
    // tenant's top-up.
    let id = TransferId::new(&format!("topup:{tenant}:{}", body.topup_id))
        .map_err(|error| ApiError::invalid("topup_id", error.to_string()))?;
    let transfer = Transfer::new(
        id,
        chart::cash(),
        chart::wallet(&tenant),
        body.amount_micro_yuan,
        codes::TOPUP,
    )
    .reference(format!("top-up by {}", caller.id()));
    let result = state
        .store
        .create_transfers(std::slice::from_ref(&transfer), now)
        .await?
        .into_iter()
        .next()
        .expect("one result per transfer");
    match result {
        Ok(Applied::Created | Applied::Exists) => Ok(Json(wallet(&state, &tenant).await?)),
        Err(TransferError::ExistsWithDifferentFields { field }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("top-up {} was made with a different {field}", body.topup_id),
        )),
        Err(error) => Err(ApiError::internal(error)),
    }
}

#[utoipa::path(put, path = "/v1/tenants/{id}/wallet/credit", params(IdPath), request_body = CreditLimit, responses((status = 200, body = WalletView), Authn, Hidden, BadBody, Conflict), tag = "money")]
pub async fn credit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<CreditLimit>,
) -> ApiResult<Json<WalletView>> {
    let tenant = operator_tenant(&state, &caller, &id).await?;
    let limit = body.read().await?.value.credit_limit_micro_yuan;
    if !(0..=AMOUNT_MICRO_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "credit_limit_micro_yuan",
            format!("must be 0 to {AMOUNT_MICRO_MAX}"),
        ));
    }
    let now = now_ms();
    open_accounts(&state, &tenant, now).await?;
    match state
        .store
        .set_floor(&chart::wallet(&tenant), Some(-limit), now)
        .await?
    {
        Ok(_) => Ok(Json(wallet(&state, &tenant).await?)),
        // Withdrawing credit that holds or charges use: refused, named.
        Err(error) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            error.to_string(),
        )),
    }
}

/// The tenant `id`, for the operator; 404 for anyone else and for an id
/// that is no tenant.
async fn operator_tenant(state: &AppState, caller: &Caller, id: &str) -> ApiResult<String> {
    caller.require(Role::Operator)?;
    check_path_id(id)?;
    let tenants = state.store.principals(Role::Tenant).await?;
    tenants
        .into_iter()
        .find(|tenant| tenant.id == id)
        .map(|tenant| tenant.id)
        .ok_or_else(|| ApiError::not_found(format!("tenant {id}")))
}

/// Opens the platform's and the tenant's accounts (idempotent).
async fn open_accounts(state: &AppState, tenant: &str, now: i64) -> ApiResult<()> {
    let mut accounts = chart::system_accounts();
    accounts.extend(chart::tenant_accounts(tenant));
    for result in state.store.create_accounts(&accounts, now).await? {
        result.map_err(ApiError::internal)?;
    }
    Ok(())
}

async fn wallet(state: &AppState, tenant: &str) -> ApiResult<WalletView> {
    let wallet = state.store.account(&chart::wallet(tenant)).await?;
    let arrears = state.store.account(&chart::arrears(tenant)).await?;
    Ok(match wallet {
        None => WalletView {
            tenant: tenant.to_owned(),
            asset: "CNY".into(),
            opened: false,
            balance_micro_yuan: 0,
            held_micro_yuan: 0,
            available_micro_yuan: 0,
            credit_limit_micro_yuan: 0,
            arrears_micro_yuan: 0,
        },
        Some(wallet) => WalletView {
            tenant: tenant.to_owned(),
            asset: wallet.asset.as_str().to_owned(),
            opened: true,
            balance_micro_yuan: wallet.balance_micro(),
            held_micro_yuan: wallet.totals.debits_pending_micro,
            available_micro_yuan: wallet.available_micro(),
            credit_limit_micro_yuan: wallet.floor_micro.map_or(0, |floor| -floor),
            arrears_micro_yuan: arrears.map_or(0, |a| a.balance_micro()),
        },
    })
}
