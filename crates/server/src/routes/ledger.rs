//! `GET /v1/ledger/check` (operator): recompute every balance from the
//! ledger's history and compare with the stored totals.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use suanwang_api::LedgerCheckView;
use suanwang_store::Role;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::openapi::{Authn, Hidden};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/ledger/check", responses((status = 200, body = LedgerCheckView), Authn, Hidden), tag = "money")]
pub async fn check(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<LedgerCheckView>> {
    caller.require(Role::Operator)?;
    let checked = state.store.ledger_check().await?;
    Ok(Json(LedgerCheckView {
        accounts: checked.accounts,
        transfers: checked.transfers,
        open_pendings: checked.open_pendings,
    }))
}
