//! Principals (operators, tenants, providers, sites) and their tokens.

use std::sync::LazyLock;

use crate::backend::Backend;
use crate::conn::{Conn, Tx};
use crate::sql::{audit_in, int, known, quoted, token_in, unique_as_conflict, Count, Id};
use crate::{Audit, NewToken, PrincipalRow, Result, Role, StoreError, TokenRow};

/// A principal of this role with this name, other than a site (site names
/// are unique per provider, in `sites`). Served by the partial index
/// `principals_role_name`.
static NAME_TAKEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id FROM principals WHERE role = ? AND name = ? AND role <> {}",
        quoted(&[Role::Site])
    )
});

pub(crate) async fn principal_count(store: &impl Backend, role: Role) -> Result<u64> {
    let count: Count = store
        .reader()
        .fetch_one(
            "SELECT COUNT(*) AS n FROM principals WHERE role = ?",
            &[role.as_str().into()],
        )
        .await?;
    int(
        "count of principals",
        format_args!("role {}", role.as_str()),
        count.n,
    )
}

pub(crate) async fn create_principal(
    store: &impl Backend,
    principal: &PrincipalRow,
    token: &NewToken,
    audit: &Audit,
) -> Result<()> {
    let result: Result<()> = async {
        let mut tx = store.begin().await?;
        let taken: Option<Id> = tx
            .fetch_optional(
                &NAME_TAKEN,
                &[principal.role.as_str().into(), (&principal.name).into()],
            )
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "a {} named {:?} exists",
                principal.role.as_str(),
                principal.name
            )));
        }
        insert(&mut tx, principal, token).await?;
        audit_in(&mut tx, audit).await?;
        tx.commit().await
    }
    .await;
    unique_as_conflict(result, || {
        format!(
            "a {} named {:?} or the id or token exists",
            principal.role.as_str(),
            principal.name
        )
    })
}

/// Inserts `principal` with its first token (a site is a principal too).
pub(crate) async fn insert(
    tx: &mut impl Conn,
    principal: &PrincipalRow,
    token: &NewToken,
) -> Result<()> {
    tx.execute(
        "INSERT INTO principals (id, role, name, parent, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        &[
            (&principal.id).into(),
            principal.role.as_str().into(),
            (&principal.name).into(),
            (&principal.parent).into(),
            principal.created_at_ms.into(),
        ],
    )
    .await?;
    token_in(tx, token).await
}

#[derive(Debug, sqlx::FromRow)]
struct TokenPrincipal {
    id: String,
    role: String,
    name: String,
    parent: Option<String>,
    created_at_ms: i64,
    token: String,
}

pub(crate) async fn principal_by_token(
    store: &impl Backend,
    hash: &str,
) -> Result<Option<(PrincipalRow, String)>> {
    let row: Option<TokenPrincipal> = store
        .reader()
        .fetch_optional(
            "SELECT p.id, p.role, p.name, p.parent, p.created_at_ms, t.id AS token \
             FROM tokens t JOIN principals p ON p.id = t.principal \
             WHERE t.hash = ? AND t.revoked_at_ms IS NULL",
            &[hash.into()],
        )
        .await?;
    row.map(|row| {
        let role = known(
            "principals.role",
            format_args!("principal {}", row.id),
            &row.role,
        )?;
        let principal = PrincipalRow {
            id: row.id,
            role,
            name: row.name,
            parent: row.parent,
            created_at_ms: row.created_at_ms,
        };
        Ok((principal, row.token))
    })
    .transpose()
}

#[derive(Debug, sqlx::FromRow)]
struct PrincipalSelect {
    id: String,
    name: String,
    parent: Option<String>,
    created_at_ms: i64,
}

pub(crate) async fn principals(store: &impl Backend, role: Role) -> Result<Vec<PrincipalRow>> {
    let rows: Vec<PrincipalSelect> = store
        .reader()
        .fetch_all(
            "SELECT id, name, parent, created_at_ms FROM principals WHERE role = ? ORDER BY name",
            &[role.as_str().into()],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| PrincipalRow {
            id: row.id,
            role,
            name: row.name,
            parent: row.parent,
            created_at_ms: row.created_at_ms,
        })
        .collect())
}

pub(crate) async fn create_token(
    store: &impl Backend,
    token: &NewToken,
    audit: &Audit,
) -> Result<()> {
    let result: Result<()> = async {
        let mut tx = store.begin().await?;
        token_in(&mut tx, token).await?;
        audit_in(&mut tx, audit).await?;
        tx.commit().await
    }
    .await;
    unique_as_conflict(result, || {
        format!("token {:?} or its hash exists", token.id)
    })
}

#[derive(Debug, sqlx::FromRow)]
struct TokenSelect {
    id: String,
    name: String,
    created_at_ms: i64,
    revoked_at_ms: Option<i64>,
}

pub(crate) async fn tokens(store: &impl Backend, principal: &str) -> Result<Vec<TokenRow>> {
    let rows: Vec<TokenSelect> = store
        .reader()
        .fetch_all(
            "SELECT id, name, created_at_ms, revoked_at_ms FROM tokens WHERE principal = ? \
             ORDER BY created_at_ms, id",
            &[principal.into()],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| TokenRow {
            id: row.id,
            name: row.name,
            created_at_ms: row.created_at_ms,
            revoked: row.revoked_at_ms.is_some(),
        })
        .collect())
}

pub(crate) async fn revoke_token(
    store: &impl Backend,
    principal: &str,
    token: &str,
    audit: &Audit,
) -> Result<bool> {
    let mut tx = store.begin().await?;
    let done = tx
        .execute(
            "UPDATE tokens SET revoked_at_ms = ? WHERE id = ? AND principal = ? AND revoked_at_ms IS NULL",
            &[audit.at_ms.into(), token.into(), principal.into()],
        )
        .await?;
    if done == 0 {
        return Ok(false);
    }
    audit_in(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(true)
}
