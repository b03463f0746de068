//! suanwang's control plane: the HTTP API (`/v1`), authentication and
//! roles, group commit of submissions, the agent protocol, and the
//! scheduling loop. This crate is an edge: it owns the clock, the sockets
//! and the database handles; decisions are made in `suanwang-core` and
//! `suanwang-place`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Router;
use suanwang_api::TopologySpec;
use suanwang_core::topology::Topology;
use suanwang_store::{Audit, NewToken, PgStore, PrincipalRow, Role, SqliteStore, Store};
use tokio::sync::{watch, Notify};

pub mod auth;
pub mod commit;
pub mod error;
pub mod json;
pub mod openapi;
pub mod prune;
pub mod routes;
pub mod scheduler;
pub mod state;

pub use state::{AppState, Settings};

use auth::{hash_token, new_id, new_token, RateLimiter, Secret, TokenCache};
use commit::GroupCommit;
use routes::{
    bills, earnings, jobs, ledger, market, principals, quote, sites, system, topology, wallet,
};

/// Milliseconds since the Unix epoch: the one wall clock of the server.
pub fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Where the data lives: `sqlite://PATH` or `postgres://...`.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(Secret),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Database::Postgres(_) => f.write_str("postgres://<redacted>"),
        }
    }
}

impl Database {
    /// Parses a `--db` value; `None` means the default file in `data_dir`.
    pub fn parse(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Database> {
        match url {
            None => Ok(Database::Sqlite(data_dir.join("suanwang.db"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(Secret(url.to_owned())))
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Ok(Database::Sqlite(PathBuf::from(path))),
                _ => anyhow::bail!("--db: expected sqlite://PATH or postgres://..., got {url:?}"),
            },
        }
    }
}

/// An open store, plus the lock that keeps a second server off a SQLite file.
#[derive(Debug)]
pub struct Opened {
    pub store: Arc<dyn Store>,
    _lock: Option<std::fs::File>,
}

/// Opens the store of `database`, settling money by `money`.
pub async fn open_store(
    database: &Database,
    money: suanwang_core::bill::MoneyConfig,
) -> anyhow::Result<Opened> {
    match database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let lock_path = path.with_extension("lock");
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .with_context(|| format!("opening {}", lock_path.display()))?;
            lock.try_lock().map_err(|_| {
                anyhow::anyhow!(
                    "another suanwang server uses {} (lock {} is held)",
                    path.display(),
                    lock_path.display()
                )
            })?;
            let store = SqliteStore::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?
                .with_money(money);
            Ok(Opened {
                store: Arc::new(store),
                _lock: Some(lock),
            })
        }
        Database::Postgres(url) => {
            let store = PgStore::open(&url.0)
                .await
                .context("connecting to PostgreSQL")?
                .with_money(money);
            Ok(Opened {
                store: Arc::new(store),
                _lock: None,
            })
        }
    }
}

fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // In tests several servers share a process; the first recorder wins.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Builds the state of one server over `store`: loads the topology (the
/// built-in national one until an operator replaces it) and starts the
/// group-commit writer.
pub async fn state(store: Arc<dyn Store>, settings: Settings) -> anyhow::Result<Arc<AppState>> {
    let topology = match store.topology().await? {
        Some(text) => {
            let spec: TopologySpec = serde_json::from_str(&text).context("stored topology")?;
            Topology::validate(&spec).context("stored topology")?
        }
        None => Topology::national(),
    };
    let limiter = RateLimiter::new(settings.rate_limit_per_s, settings.rate_limit_burst);
    // SQLite has one writer; PostgreSQL overlaps the fsyncs of a few.
    let writers = settings
        .commit_writers
        .unwrap_or(if store.backend() == "postgres" { 4 } else { 1 });
    let commit = GroupCommit::start(store.clone(), writers, |jobs| {
        metrics::counter!("suanwang_jobs_submitted_total").increment(jobs as u64);
    });
    let (changes, _) = watch::channel(0);
    Ok(Arc::new(AppState {
        store,
        settings,
        topology: RwLock::new(Arc::new(topology)),
        tokens: TokenCache::default(),
        limiter,
        commit,
        wake: Notify::new(),
        changes,
        in_flight: Mutex::new(Default::default()),
        metrics: metrics_handle(),
    }))
}

/// On first start, creates the operator. Its token is `given` (from
/// `SUANWANG_OPERATOR_TOKEN`) or a new one, returned so the caller prints it
/// once. A `given` token not yet known is added to the existing operator.
pub async fn bootstrap_operator(
    state: &AppState,
    given: Option<&Secret>,
) -> anyhow::Result<Option<Secret>> {
    let now = now_ms();
    if let Some(given) = given {
        anyhow::ensure!(
            given.0.starts_with(auth::TOKEN_PREFIX)
                && given.0.len() >= auth::TOKEN_PREFIX.len() + 32
                && given.0.len() <= 128,
            "SUANWANG_OPERATOR_TOKEN must start with {} and have 32 to 124 more characters",
            auth::TOKEN_PREFIX
        );
    }
    if state.store.principal_count(Role::Operator).await? > 0 {
        let Some(given) = given else { return Ok(None) };
        let hash = hash_token(&given.0);
        if state.store.principal_by_token(&hash).await?.is_some() {
            return Ok(None);
        }
        let operator = state
            .store
            .principals(Role::Operator)
            .await?
            .into_iter()
            .next()
            .context("an operator exists")?;
        let token = NewToken {
            id: new_id("tok_"),
            principal: operator.id.clone(),
            name: "environment".into(),
            hash,
            created_at_ms: now,
        };
        let audit = Audit {
            at_ms: now,
            principal: operator.id.clone(),
            action: "token.create".into(),
            target: token.id.clone(),
            detail: "SUANWANG_OPERATOR_TOKEN".into(),
        };
        state.store.create_token(&token, &audit).await?;
        return Ok(None);
    }
    let (secret, hash) = match given {
        Some(given) => (given.clone(), hash_token(&given.0)),
        None => new_token(),
    };
    let operator = PrincipalRow {
        id: new_id("op_"),
        role: Role::Operator,
        name: "operator".into(),
        parent: None,
        created_at_ms: now,
    };
    let token = NewToken {
        id: new_id("tok_"),
        principal: operator.id.clone(),
        name: "first".into(),
        hash,
        created_at_ms: now,
    };
    let audit = Audit {
        at_ms: now,
        principal: operator.id.clone(),
        action: "operator.create".into(),
        target: operator.id.clone(),
        detail: "first start".into(),
    };
    match state
        .store
        .create_principal(&operator, &token, &audit)
        .await
    {
        Ok(()) => Ok(given.is_none().then_some(secret)),
        // Another server created it at the same moment.
        Err(suanwang_store::StoreError::Conflict(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("suanwang_http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("suanwang_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route(
            "/tenants",
            post(principals::create_tenant).get(principals::list_tenants),
        )
        .route(
            "/providers",
            post(principals::create_provider).get(principals::list_providers),
        )
        .route("/whoami", get(principals::whoami))
        .route(
            "/tokens",
            post(principals::create_token).get(principals::list_tokens),
        )
        .route("/tokens/{id}", delete(principals::revoke_token))
        .route("/topology", get(topology::show).put(topology::replace))
        .route("/sites", post(sites::create).get(sites::list))
        .route("/sites/{id}", get(sites::get))
        .route("/sites/{id}/pools", put(sites::put_pools))
        .route("/sites/{id}/heartbeat", post(sites::heartbeat))
        .route("/sites/{id}/assignments", get(sites::assignments))
        .route("/sites/{id}/reports", post(sites::report))
        .route("/jobs", post(jobs::submit).get(jobs::list))
        .route("/jobs/quote", post(quote::quote))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/why", get(jobs::why))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/tasks", get(jobs::tasks))
        .route("/jobs/{id}/events", get(jobs::events))
        .route("/jobs/{id}/usage", get(jobs::usage))
        .route("/market", get(market::list))
        .route("/bills", get(bills::list))
        .route("/earnings", get(earnings::list))
        .route("/ledger/check", get(ledger::check))
        .route("/wallet", get(wallet::own))
        .route("/tenants/{id}/wallet", get(wallet::show))
        .route("/tenants/{id}/wallet/topups", post(wallet::topup))
        .route("/tenants/{id}/wallet/credit", put(wallet::credit))
        .route("/place/export", get(system::export))
        .route("/openapi.json", get(system::openapi));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route_layer(middleware::from_fn(track))
        // The same answer as for a resource the caller may not see.
        .fallback(json::no_such_route)
        .layer(DefaultBodyLimit::max(json::BODY_BYTES_READ_MAX))
        .with_state(state)
}

/// A running server: its address and the handle that stops it.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, finishes requests in flight, stops the loop.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds `listen` and serves `state` with the scheduling loop beside it.
pub async fn start(state: Arc<AppState>, listen: SocketAddr) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let (shutdown, receiver) = watch::channel(false);
    let app = router(state.clone());
    let mut http_shutdown = receiver.clone();
    let http = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "HTTP server stopped");
        }
    });
    let scheduler = tokio::spawn(scheduler::run(state.clone(), receiver.clone()));
    let prune = tokio::spawn(prune::run(state.clone(), receiver));
    Ok(Running {
        addr,
        state,
        shutdown,
        tasks: vec![http, scheduler, prune],
    })
}
