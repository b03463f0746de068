//! The topology, sites, their pools, heartbeats and assignments. The rules
//! of leases (`extend_leases`, `expire_leases`) and reports are in
//! [`lifecycle`](super::lifecycle).

use std::sync::LazyLock;

use crate::backend::Backend;
use crate::conn::{Conn, Tx};
use crate::sql::{
    audit_in, flag, int, known, principals, unique_as_conflict, Id, Named, TaskOf, ACTIVE,
};
use crate::{
    AgentStatus, AssignmentRow, Audit, NewToken, PoolRow, PoolSpecRow, PrincipalRow, Result, Role,
    SiteRow, StoreError,
};

#[derive(Debug, sqlx::FromRow)]
struct Spec {
    spec: String,
}

pub(crate) async fn topology(store: &impl Backend) -> Result<Option<String>> {
    let row: Option<Spec> = store
        .reader()
        .fetch_optional("SELECT spec FROM topology WHERE id = 1", &[])
        .await?;
    Ok(row.map(|row| row.spec))
}

pub(crate) async fn put_topology(store: &impl Backend, spec: &str, audit: &Audit) -> Result<()> {
    let mut tx = store.begin().await?;
    tx.execute(
        "INSERT INTO topology (id, spec, updated_at_ms) VALUES (1, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at_ms = excluded.updated_at_ms",
        &[spec.into(), audit.at_ms.into()],
    )
    .await?;
    audit_in(&mut tx, audit).await?;
    tx.commit().await
}

pub(crate) async fn create_site(
    store: &impl Backend,
    site: &SiteRow,
    token: &NewToken,
    audit: &Audit,
) -> Result<()> {
    let result: Result<()> = async {
        let mut tx = store.begin().await?;
        let taken: Option<Id> = tx
            .fetch_optional(
                "SELECT id FROM sites WHERE provider = ? AND name = ?",
                &[(&site.provider).into(), (&site.name).into()],
            )
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "a site named {:?} exists",
                site.name
            )));
        }
        let principal = PrincipalRow {
            id: site.id.clone(),
            role: Role::Site,
            name: site.name.clone(),
            parent: Some(site.provider.clone()),
            created_at_ms: audit.at_ms,
        };
        principals::insert(&mut tx, &principal, token).await?;
        tx.execute(
            "INSERT INTO sites (id, provider, name, region, healthy, version, created_at_ms) \
             VALUES (?, ?, ?, ?, 0, 0, ?)",
            &[
                (&site.id).into(),
                (&site.provider).into(),
                (&site.name).into(),
                (&site.region).into(),
                audit.at_ms.into(),
            ],
        )
        .await?;
        audit_in(&mut tx, audit).await?;
        tx.commit().await
    }
    .await;
    unique_as_conflict(result, || {
        format!("a site named {:?} or the id or token exists", site.name)
    })
}

/// A `sites` row as the site queries select it ([`SITE_COLUMNS`]).
#[derive(Debug, sqlx::FromRow)]
struct SiteSelect {
    id: String,
    provider: String,
    name: String,
    region: String,
    lease_expires_at_ms: Option<i64>,
    healthy: i64,
    version: i64,
    agent_outbox: Option<i64>,
    agent_starts_paused: Option<String>,
}

/// The columns of [`SiteSelect`], in its order.
const SITE_COLUMNS: &str = "id, provider, name, region, lease_expires_at_ms, healthy, version, \
     agent_outbox, agent_starts_paused";

impl SiteSelect {
    fn into_row(self) -> Result<SiteRow> {
        let of = Named("site", &self.id);
        let healthy = flag("sites.healthy", of, self.healthy)?;
        let outbox = self
            .agent_outbox
            .map(|n| int("sites.agent_outbox", of, n))
            .transpose()?;
        Ok(SiteRow {
            id: self.id,
            provider: self.provider,
            name: self.name,
            region: self.region,
            lease_expires_at_ms: self.lease_expires_at_ms,
            healthy,
            version: self.version,
            agent: AgentStatus {
                outbox,
                starts_paused: self.agent_starts_paused,
            },
        })
    }
}

static SITES: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {SITE_COLUMNS} FROM sites WHERE (? IS NULL OR provider = ?) ORDER BY name, id")
});

static SITE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?"));

pub(crate) async fn sites(store: &impl Backend, provider: Option<&str>) -> Result<Vec<SiteRow>> {
    let rows: Vec<SiteSelect> = store
        .reader()
        .fetch_all(&SITES, &[provider.into(), provider.into()])
        .await?;
    rows.into_iter().map(SiteSelect::into_row).collect()
}

pub(crate) async fn site(store: &impl Backend, id: &str) -> Result<Option<SiteRow>> {
    let row: Option<SiteSelect> = store.reader().fetch_optional(&SITE, &[id.into()]).await?;
    row.map(SiteSelect::into_row).transpose()
}

pub(crate) async fn put_pools(
    store: &impl Backend,
    site: &str,
    pools: &[PoolRow],
    audit: &Audit,
) -> Result<()> {
    let mut tx = store.begin().await?;
    tx.execute("UPDATE pools SET active = 0 WHERE site = ?", &[site.into()])
        .await?;
    for pool in pools {
        assert_eq!(pool.site, site);
        tx.execute(
            "INSERT INTO pools (id, site, name, spec, kind, family, capacity, price_micro, active) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) \
             ON CONFLICT (site, name) DO UPDATE SET spec = excluded.spec, kind = excluded.kind, \
             family = excluded.family, capacity = excluded.capacity, \
             price_micro = excluded.price_micro, active = 1",
            &[
                (&pool.id).into(),
                site.into(),
                (&pool.name).into(),
                (&pool.spec).into(),
                (&pool.kind).into(),
                (&pool.family).into(),
                pool.capacity.into(),
                pool.price_micro.into(),
            ],
        )
        .await?;
    }
    audit_in(&mut tx, audit).await?;
    tx.commit().await
}

/// A `pools` row with the units its placed and running tasks hold.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PoolSelect {
    pub id: String,
    pub site: String,
    pub name: String,
    pub spec: String,
    pub kind: String,
    pub family: String,
    pub capacity: i64,
    pub price_micro: i64,
    pub used: i64,
}

impl PoolSelect {
    pub(crate) fn into_row(self) -> Result<PoolRow> {
        let of = Named("pool", &self.id);
        Ok(PoolRow {
            capacity: int("pools.capacity", of, self.capacity)?,
            used: int("units used of pools", of, self.used)?,
            id: self.id,
            site: self.site,
            name: self.name,
            spec: self.spec,
            kind: self.kind,
            family: self.family,
            price_micro: self.price_micro,
        })
    }
}

static POOLS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT p.id, p.site, p.name, p.spec, p.kind, p.family, p.capacity, p.price_micro, \
         CAST(COALESCE((SELECT SUM(t.units) FROM tasks t \
                        WHERE t.site = p.site AND t.pool = p.id AND t.state IN ({})), 0) AS BIGINT) AS used \
         FROM pools p WHERE p.site = ? AND p.active = 1 ORDER BY p.name",
        *ACTIVE
    )
});

pub(crate) async fn pools(store: &impl Backend, site: &str) -> Result<Vec<PoolRow>> {
    let rows: Vec<PoolSelect> = store.reader().fetch_all(&POOLS, &[site.into()]).await?;
    rows.into_iter().map(PoolSelect::into_row).collect()
}

pub(crate) async fn pool_specs(store: &impl Backend, site: &str) -> Result<Vec<PoolSpecRow>> {
    store
        .reader()
        .fetch_all(
            "SELECT id, kind, spec FROM pools WHERE site = ? ORDER BY id",
            &[site.into()],
        )
        .await
}

#[derive(Debug, sqlx::FromRow)]
struct AssignmentSelect {
    job: String,
    idx: i64,
    attempt: i64,
    pool: String,
    state: String,
    units: i64,
    spec: String,
}

static ASSIGNMENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT t.job, t.idx, t.attempt, t.pool, t.state, t.units, j.spec \
         FROM tasks t JOIN jobs j ON j.id = t.job \
         WHERE t.site = ? AND t.state IN ({}) ORDER BY t.job, t.idx",
        *ACTIVE
    )
});

pub(crate) async fn assignments(
    store: &impl Backend,
    site: &str,
) -> Result<(i64, Vec<AssignmentRow>)> {
    let version = site_version(store, site).await?;
    let rows: Vec<AssignmentSelect> = store
        .reader()
        .fetch_all(&ASSIGNMENTS, &[site.into()])
        .await?;
    let rows = rows
        .into_iter()
        .map(|row| {
            let of = TaskOf(&row.job, row.idx);
            Ok(AssignmentRow {
                task: int("tasks.idx", of, row.idx)?,
                attempt: int("tasks.attempt", of, row.attempt)?,
                state: known("tasks.state", of, &row.state)?,
                units: int("tasks.units", of, row.units)?,
                job: row.job,
                pool: row.pool,
                spec: row.spec,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((version, rows))
}

#[derive(Debug, sqlx::FromRow)]
struct Version {
    version: i64,
}

pub(crate) async fn site_version(store: &impl Backend, site: &str) -> Result<i64> {
    let row: Option<Version> = store
        .reader()
        .fetch_optional("SELECT version FROM sites WHERE id = ?", &[site.into()])
        .await?;
    row.map(|row| row.version)
        .ok_or_else(|| StoreError::NotFound(format!("site {site}")))
}
