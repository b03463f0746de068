//! Tenants, providers and tokens.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use suanwang_api::{
    CreatePrincipal, CreateToken, PrincipalCreated, PrincipalView, TokenCreated, TokenView, WhoAmI,
};
use suanwang_store::{Audit, NewToken, PrincipalRow, Role};

use crate::auth::{new_id, new_token, Caller};
use crate::error::ApiResult;
use crate::json::JsonBody;
use crate::now_ms;
use crate::openapi::{Authn, BadBody, Conflict, Hidden};
use crate::routes::{check_path_id, IdPath};
use crate::state::AppState;
use suanwang_core::spec::check_name;

pub fn view(row: &PrincipalRow) -> PrincipalView {
    PrincipalView {
        id: row.id.clone(),
        name: row.name.clone(),
        role: row.role.as_str().to_owned(),
        created_at_ms: row.created_at_ms,
    }
}

async fn create(
    state: &AppState,
    caller: &Caller,
    role: Role,
    body: JsonBody<CreatePrincipal>,
) -> ApiResult<(StatusCode, Json<PrincipalCreated>)> {
    caller.require(Role::Operator)?;
    let body = body.read().await?.value;
    check_name("name", &body.name)?;
    let now = now_ms();
    let prefix = match role {
        Role::Tenant => "ten_",
        Role::Provider => "pro_",
        _ => "pri_",
    };
    let principal = PrincipalRow {
        id: new_id(prefix),
        role,
        name: body.name.clone(),
        parent: None,
        created_at_ms: now,
    };
    let (secret, hash) = new_token();
    let token = NewToken {
        id: new_id("tok_"),
        principal: principal.id.clone(),
        name: "first".into(),
        hash,
        created_at_ms: now,
    };
    let audit = Audit {
        at_ms: now,
        principal: caller.id().to_owned(),
        action: format!("{}.create", role.as_str()),
        target: principal.id.clone(),
        detail: body.name.clone(),
    };
    state
        .store
        .create_principal(&principal, &token, &audit)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PrincipalCreated {
            id: principal.id,
            name: principal.name,
            role: role.as_str().to_owned(),
            token: secret.0,
            token_id: token.id,
        }),
    ))
}

#[utoipa::path(post, path = "/v1/tenants", request_body = CreatePrincipal, responses((status = 201, body = PrincipalCreated), Authn, Hidden, BadBody, Conflict), tag = "principals")]
pub async fn create_tenant(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<CreatePrincipal>,
) -> ApiResult<(StatusCode, Json<PrincipalCreated>)> {
    create(&state, &caller, Role::Tenant, body).await
}

#[utoipa::path(post, path = "/v1/providers", request_body = CreatePrincipal, responses((status = 201, body = PrincipalCreated), Authn, Hidden, BadBody, Conflict), tag = "principals")]
pub async fn create_provider(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<CreatePrincipal>,
) -> ApiResult<(StatusCode, Json<PrincipalCreated>)> {
    create(&state, &caller, Role::Provider, body).await
}

#[utoipa::path(get, path = "/v1/tenants", responses((status = 200, body = Vec<PrincipalView>), Authn, Hidden), tag = "principals")]
pub async fn list_tenants(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Vec<PrincipalView>>> {
    caller.require(Role::Operator)?;
    Ok(Json(
        state
            .store
            .principals(Role::Tenant)
            .await?
            .iter()
            .map(view)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/providers", responses((status = 200, body = Vec<PrincipalView>), Authn, Hidden), tag = "principals")]
pub async fn list_providers(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Vec<PrincipalView>>> {
    caller.require(Role::Operator)?;
    Ok(Json(
        state
            .store
            .principals(Role::Provider)
            .await?
            .iter()
            .map(view)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = WhoAmI), Authn), tag = "principals")]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        principal: view(&caller.principal),
        token_id: caller.token_id.clone(),
    })
}

#[utoipa::path(post, path = "/v1/tokens", request_body = CreateToken, responses((status = 201, body = TokenCreated), Authn, BadBody, Conflict), tag = "principals")]
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let name = body
        .read()
        .await?
        .value
        .name
        .unwrap_or_else(|| "api".into());
    check_name("name", &name)?;
    let now = now_ms();
    let (secret, hash) = new_token();
    let token = NewToken {
        id: new_id("tok_"),
        principal: caller.id().to_owned(),
        name: name.clone(),
        hash,
        created_at_ms: now,
    };
    let audit = Audit {
        at_ms: now,
        principal: caller.id().to_owned(),
        action: "token.create".into(),
        target: token.id.clone(),
        detail: name,
    };
    state.store.create_token(&token, &audit).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: token.id,
            token: secret.0,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, body = Vec<TokenView>), Authn), tag = "principals")]
pub async fn list_tokens(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Vec<TokenView>>> {
    let tokens = state.store.tokens(caller.id()).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                created_at_ms: t.created_at_ms,
                revoked: t.revoked,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", params(IdPath), responses((status = 204, description = "revoked"), Authn, Hidden), tag = "principals")]
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    check_path_id(&id)?;
    let audit = Audit {
        at_ms: now_ms(),
        principal: caller.id().to_owned(),
        action: "token.revoke".into(),
        target: id.clone(),
        detail: String::new(),
    };
    if !state.store.revoke_token(caller.id(), &id, &audit).await? {
        return Err(crate::error::ApiError::not_found(format!("token {id}")));
    }
    state.tokens.forget_token(&id);
    Ok(StatusCode::NO_CONTENT)
}
