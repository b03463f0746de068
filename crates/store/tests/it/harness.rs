//! The harness: every contract test runs against both backends through
//! [`contract!`]. SQLite gets a fresh file in a temporary directory;
//! PostgreSQL gets a fresh database (random name) on the server named by
//! `SUANWANG_TEST_POSTGRES`, dropped again at the end of the test.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use suanwang_core::machine::round::Placed;

use sqlx::Connection;
use suanwang_core::lifecycle::ReportedState;
use suanwang_store::prelude::*;
use suanwang_store::{
    Audit, Idem, IdemOutcome, NewJob, NewToken, PgStore, PoolRow, PrincipalRow, Role, RoundWrite,
    SiteRow, SqliteStore, StatusIn, UsageIn,
};

pub const ADMIN_URL_ENV: &str = "SUANWANG_TEST_POSTGRES";
pub const REQUIRE_ENV: &str = "SUANWANG_REQUIRE_POSTGRES";

/// Writes one contract test, run once per backend: `name::sqlite` and
/// `name::postgres`.
macro_rules! contract {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::harness::run_sqlite(|$db: $crate::harness::Db| async move $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::harness::run_postgres(|$db: $crate::harness::Db| async move $body).await;
            }
        }
    };
}
pub(crate) use contract;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database, and a store opened on it that holds the scheduling
/// leadership (as the server's leader would).
#[derive(Debug)]
pub struct Db {
    pub backend: Backend,
    pub store: Arc<dyn Store>,
    pub opener: Opener,
}

/// Opens further stores on a test's database.
#[derive(Clone, Debug)]
pub struct Opener {
    sqlite_path: Option<PathBuf>,
    pg_url: Option<String>,
}

impl Opener {
    /// Another store on the same database (a second server process, or the
    /// same one after a restart). It does not lead until it tries.
    pub async fn open(&self) -> Arc<dyn Store> {
        if let Some(path) = &self.sqlite_path {
            Arc::new(SqliteStore::open(path).await.expect("open sqlite"))
        } else {
            let url = self.pg_url.as_ref().expect("postgres url");
            Arc::new(PgStore::open(url).await.expect("open postgres"))
        }
    }
}

impl Db {
    pub async fn open(&self) -> Arc<dyn Store> {
        self.opener.open().await
    }

    /// Runs `sql` on a connection of its own, past the store: to write what
    /// the store never would.
    pub async fn raw(&self, sql: &str) {
        if let Some(path) = &self.opener.sqlite_path {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut connection = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("connect sqlite");
            sqlx::query(sql)
                .execute(&mut connection)
                .await
                .expect("raw sql");
            connection.close().await.expect("close sqlite");
        } else {
            let url = self.opener.pg_url.as_ref().expect("postgres url");
            let mut connection = sqlx::PgConnection::connect(url)
                .await
                .expect("connect postgres");
            sqlx::query(sql)
                .execute(&mut connection)
                .await
                .expect("raw sql");
            connection.close().await.expect("close postgres");
        }
    }
}

async fn leading(store: impl Store) -> Arc<dyn Store> {
    assert!(
        store.try_lead().await.expect("try_lead"),
        "the test's own store must lead"
    );
    Arc::new(store)
}

pub async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("suanwang.db");
    let store = SqliteStore::open(&path).await.expect("open sqlite");
    assert_eq!(store.backend(), "sqlite");
    let db = Db {
        backend: Backend::Sqlite,
        store: leading(store).await,
        opener: Opener {
            sqlite_path: Some(path),
            pg_url: None,
        },
    };
    let outcome = tokio::spawn(test(db)).await;
    drop(dir);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// The admin URL, or `None` (with the reason on stderr) when PostgreSQL
/// tests are to be skipped. Fails when `SUANWANG_REQUIRE_POSTGRES=1`.
#[allow(clippy::print_stderr)]
pub fn admin_url() -> Option<String> {
    match std::env::var(ADMIN_URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{REQUIRE_ENV}=1 but {ADMIN_URL_ENV} is not set: the PostgreSQL contract tests cannot run"
            );
            eprintln!(
                "skipped: {ADMIN_URL_ENV} is not set, so the PostgreSQL contract tests do not run"
            );
            None
        }
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(at) => (&url[..at], &url[at..]),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    format!("{}/{database}{query}", &base[..path_start])
}

pub fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "suanwang_test_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn admin_execute(admin: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut connection = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(sql).execute(&mut connection).await?;
    connection.close().await
}

pub async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(admin) = admin_url() else {
        return;
    };
    let name = unique_name();
    admin_execute(&admin, &format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|error| panic!("create test database {name} via {ADMIN_URL_ENV}: {error}"));
    let url = with_database(&admin, &name);
    let outcome = match PgStore::open(&url).await {
        Ok(store) => {
            assert_eq!(store.backend(), "postgres");
            let db = Db {
                backend: Backend::Postgres,
                store: leading(store).await,
                opener: Opener {
                    sqlite_path: None,
                    pg_url: Some(url),
                },
            };
            tokio::spawn(test(db)).await.map_err(|e| e.into_panic())
        }
        Err(error) => Err(Box::new(format!("open PgStore on {name}: {error}")) as Box<_>),
    };
    // Best effort: a leftover database is only clutter.
    let _ = admin_execute(
        &admin,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn with_database_replaces_the_path() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/suanwang", "x"),
        "postgres://u:p@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h:5432", "x"),
        "postgres://u:p@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://h/db?sslmode=disable", "x"),
        "postgres://h/x?sslmode=disable"
    );
}

// Fixtures.

/// A fixed clock: tests pass times explicitly.
pub const T0: i64 = 1_700_000_000_000;

pub fn audit(principal: &str, action: &str, target: &str) -> Audit {
    Audit {
        at_ms: T0,
        principal: principal.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: String::new(),
    }
}

pub fn token(id: &str, principal: &str) -> NewToken {
    NewToken {
        id: id.to_owned(),
        principal: principal.to_owned(),
        name: format!("{id} name"),
        hash: hash_of(id),
        created_at_ms: T0,
    }
}

pub fn hash_of(token: &str) -> String {
    format!("sha256-of-{token}")
}

pub fn principal(role: Role, id: &str, name: &str) -> PrincipalRow {
    PrincipalRow {
        id: id.to_owned(),
        role,
        name: name.to_owned(),
        parent: None,
        created_at_ms: T0,
    }
}

async fn create(store: &dyn Store, role: Role, name: &str) -> String {
    let id = format!("{}-{name}", role.as_str());
    store
        .create_principal(
            &principal(role, &id, name),
            &token(&format!("tok-{id}"), &id),
            &audit("op", "create", &id),
        )
        .await
        .expect("create principal");
    id
}

pub async fn tenant(store: &dyn Store, name: &str) -> String {
    create(store, Role::Tenant, name).await
}

pub async fn provider(store: &dyn Store, name: &str) -> String {
    create(store, Role::Provider, name).await
}

pub fn site_row(id: &str, provider: &str, name: &str, region: &str) -> SiteRow {
    SiteRow {
        id: id.to_owned(),
        provider: provider.to_owned(),
        name: name.to_owned(),
        region: region.to_owned(),
        lease_expires_at_ms: None,
        healthy: false,
        version: 0,
        agent: Default::default(),
    }
}

/// A site of `provider` with its token; not yet healthy (no heartbeat).
pub async fn site(store: &dyn Store, provider: &str, name: &str, region: &str) -> String {
    site_with_id(store, &format!("site-{name}"), provider, name, region).await
}

pub async fn site_with_id(
    store: &dyn Store,
    id: &str,
    provider: &str,
    name: &str,
    region: &str,
) -> String {
    let id = id.to_owned();
    store
        .create_site(
            &site_row(&id, provider, name, region),
            &token(&format!("tok-{id}"), &id),
            &audit(provider, "site.create", &id),
        )
        .await
        .expect("create site");
    id
}

pub fn pool(site: &str, name: &str, capacity: u64) -> PoolRow {
    PoolRow {
        id: format!("{site}.{name}"),
        site: site.to_owned(),
        name: name.to_owned(),
        spec: format!(r#"{{"name":"{name}","capacity":{capacity}}}"#),
        kind: "gpu".to_owned(),
        family: "ascend".to_owned(),
        capacity,
        price_micro: 2_500_000,
        used: 0,
    }
}

pub fn job(id: &str, tenant: &str, tasks: u64, units: u64, retries: u32) -> NewJob {
    NewJob {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        name: format!("{id} name"),
        spec: format!(r#"{{"job":"{id}"}}"#),
        tasks,
        units,
        retries,
        kind: suanwang_core::spec::JobKind::Batch,
        created_at_ms: T0,
        idem: None,
        audit: audit(tenant, "job.submit", id),
    }
}

pub fn idem(principal: &str, key: &str, hash: &str, body: &str) -> Idem {
    Idem {
        principal: principal.to_owned(),
        key: key.to_owned(),
        request_hash: hash.to_owned(),
        status: 201,
        body: body.to_owned(),
        created_at_ms: T0,
    }
}

/// A service: replicas started again when they end.
pub fn service(id: &str, tenant: &str, replicas: u64, retries: u32) -> NewJob {
    NewJob {
        kind: suanwang_core::spec::JobKind::Service,
        ..job(id, tenant, replicas, 1, retries)
    }
}

/// A gang: all `tasks` together or not at all.
pub fn gang(id: &str, tenant: &str, tasks: u64, retries: u32) -> NewJob {
    NewJob {
        kind: suanwang_core::spec::JobKind::Gang,
        ..job(id, tenant, tasks, 1, retries)
    }
}

pub fn with_idem(mut job: NewJob, key: &str, hash: &str) -> NewJob {
    job.idem = Some(idem(
        &job.tenant,
        key,
        hash,
        &format!(r#"{{"id":"{}"}}"#, job.id),
    ));
    job
}

pub async fn submit(store: &dyn Store, job: NewJob) -> IdemOutcome {
    let mut outcomes = store.submit_batch(&[job]).await.expect("submit");
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

/// Places `count` pending tasks of `job` on `pool` at `site` in one round.
pub async fn place(store: &dyn Store, job: &str, pool: &str, site: &str, count: u64) {
    store
        .apply_round(&RoundWrite {
            placements: vec![placed(
                job.to_owned(),
                pool.to_owned(),
                site.to_owned(),
                count,
            )],
            whys: Vec::new(),
            prices: Vec::new(),
            holds: vec![],
            at_ms: T0 + 1,
        })
        .await
        .expect("apply round");
}

pub fn status(job: &str, task: u64, attempt: u32, state: &str) -> StatusIn {
    StatusIn {
        job: job.to_owned(),
        task,
        attempt,
        state: ReportedState::parse(state).expect("running, succeeded or failed"),
        exit_code: None,
        reason: None,
        output_tail: None,
    }
}

pub fn usage(job: &str, task: u64, attempt: u32, seq: u32, pool: &str) -> UsageIn {
    UsageIn {
        job: job.to_owned(),
        task,
        attempt,
        seq,
        pool: pool.to_owned(),
        units: 1,
        wall_ms: 60_000,
        device_model: "huawei-ascend-910b".to_owned(),
        scu_micro_hours: 2_666_667,
        scu_rated: true,
        catalogue_version: "2026-11".to_owned(),
        energy_wh: 40,
        co2_g: 20,
    }
}

/// The state of a job.
pub async fn job_state(store: &dyn Store, job: &str) -> String {
    store
        .job(job)
        .await
        .expect("job")
        .expect("job exists")
        .state
        .as_str()
        .to_owned()
}

/// The task states of a job, by index.
pub async fn task_states(store: &dyn Store, job: &str) -> Vec<String> {
    store
        .tasks(job, None, 1_000)
        .await
        .expect("tasks")
        .into_iter()
        .map(|t| t.state.as_str().to_owned())
        .collect()
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A provider, one healthy site (lease until `T0 + 60 s`) in `r1` with one
/// pool of 16 units, and a tenant.
#[derive(Debug)]
pub struct World {
    pub tenant: String,
    pub provider: String,
    pub site: String,
    pub pool: String,
}

pub async fn world(store: &dyn Store) -> World {
    let tenant = tenant(store, "acme").await;
    let provider = provider(store, "hub").await;
    let site = site(store, &provider, "gz1", "r1").await;
    let p = pool(&site, "main", 16);
    store
        .put_pools(
            &site,
            std::slice::from_ref(&p),
            &audit(&site, "pools.put", &site),
        )
        .await
        .expect("put pools");
    store
        .heartbeat(&site, T0 + 60_000, &Default::default())
        .await
        .expect("heartbeat");
    World {
        tenant,
        provider,
        site,
        pool: p.id,
    }
}

/// A placement of `count` tasks at a price of 1 yuan per unit-hour, bid 2.
pub fn placed(job: String, pool: String, site: String, count: u64) -> Placed {
    Placed {
        job,
        pool,
        site,
        count,
        price: suanwang_core::machine::script::SCRIPT_PRICE,
    }
}
