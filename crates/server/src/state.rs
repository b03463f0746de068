//! The shared state of one `serve` process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use suanwang_core::topology::Topology;
use suanwang_store::Store;
use tokio::sync::{watch, Notify};

use crate::auth::{RateLimiter, TokenCache};
use crate::commit::GroupCommit;

/// Idempotency records are kept this long by default (as Stripe's keys).
pub const IDEMPOTENCY_RETENTION_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// The longest retention a configuration may ask for.
pub const IDEMPOTENCY_RETENTION_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Settings of a server; `suanwang serve` fills them from its TOML file,
/// flags and environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a site's lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// The longest a scheduling round waits without a wake-up.
    pub round_interval: Duration,
    pub rate_limit_per_s: u32,
    pub rate_limit_burst: u32,
    /// Longest long poll an agent may ask for.
    pub long_poll_max: Duration,
    /// Group-commit writers (1 to `commit::WRITERS_MAX`); `None`: 1 on
    /// SQLite (one writer anyway), 4 on PostgreSQL (one batch fsyncs while
    /// the next is built; more only helps a server with more cores).
    pub commit_writers: Option<usize>,
    /// How long an idempotency record answers a retried request; after it
    /// (and the next background prune) the same key is a new request.
    pub idempotency_retention: Duration,
    /// The platform's fee on compute (`core::bill::MoneyConfig`): the
    /// provider earns the rest.
    pub money: suanwang_core::bill::MoneyConfig,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            lease_ttl: Duration::from_secs(15),
            round_interval: Duration::from_secs(2),
            rate_limit_per_s: 1_000,
            rate_limit_burst: 2_000,
            long_poll_max: Duration::from_secs(30),
            commit_writers: None,
            idempotency_retention: IDEMPOTENCY_RETENTION_DEFAULT,
            money: suanwang_core::bill::MoneyConfig::new(0).expect("0 bps is a fee"),
        }
    }
}

#[derive(Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    pub topology: RwLock<Arc<Topology>>,
    pub tokens: TokenCache,
    pub limiter: RateLimiter,
    pub commit: GroupCommit,
    /// Wakes the scheduling loop (a submit, a completion, a new site).
    pub wake: Notify,
    /// Bumped whenever this process changed some site's assignments, so
    /// long polls look again at once instead of at their next tick.
    pub changes: watch::Sender<u64>,
    /// (principal, idempotency key) of requests not yet answered.
    pub in_flight: Mutex<HashSet<(String, String)>>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.read().expect("topology lock").clone()
    }

    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}
