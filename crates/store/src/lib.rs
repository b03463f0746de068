//! suanwang's durable store: the system of record.
//!
//! One trait, [`Store`], one implementation per database ([`sqlite`],
//! [`postgres`]), each with its own migrations, and one contract test suite
//! (`tests/it`) that runs against both. Every state-changing method writes its
//! audit record in the same transaction as the change; a method returns only
//! after the transaction committed, so an acknowledged write is durable.
//!
//! Rows here are the store's own types: neither JSON bodies nor domain
//! objects. The server converts at its edge.

use async_trait::async_trait;

pub mod postgres;
mod round;
mod shared;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name or id is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// This process does not hold the scheduling leadership.
    #[error("not the scheduling leader")]
    NotLeader,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Data in the database that breaks an invariant.
    #[error("corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A transaction the database aborted only because of a concurrent one
    /// (PostgreSQL's deadlock 40P01 or serialization failure 40001; SQLite's
    /// busy). Nothing of it was stored: running it again is safe.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(error)) => {
                matches!(
                    error.code().as_deref(),
                    Some("40P01" | "40001" | "5" | "517")
                )
            }
            _ => false,
        }
    }
}

/// Attempts of a transaction the database aborted as transient.
pub const TRANSIENT_ATTEMPTS_MAX: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Operator,
    Tenant,
    Provider,
    Site,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Tenant => "tenant",
            Role::Provider => "provider",
            Role::Site => "site",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Operator, Role::Tenant, Role::Provider, Role::Site]
            .into_iter()
            .find(|role| role.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalRow {
    pub id: String,
    pub role: Role,
    pub name: String,
    /// A site's provider.
    pub parent: Option<String>,
    pub created_at_ms: i64,
}

/// A token to store: only its hash, never the secret.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub id: String,
    pub principal: String,
    pub name: String,
    pub hash: String,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub revoked: bool,
}

/// Who did what, written in the same transaction as the change.
#[derive(Clone, Debug)]
pub struct Audit {
    pub at_ms: i64,
    pub principal: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// A stored answer to an idempotent request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idem {
    pub principal: String,
    pub key: String,
    pub request_hash: String,
    pub status: u16,
    pub body: String,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdemOutcome {
    /// The request ran now.
    Done,
    /// The same key and body came before: here is the original answer.
    Replay { status: u16, body: String },
    /// The same key came before with another body.
    Mismatch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteRow {
    pub id: String,
    pub provider: String,
    pub name: String,
    pub region: String,
    pub lease_expires_at_ms: Option<i64>,
    pub healthy: bool,
    pub version: i64,
    /// What the agent said with its last heartbeat.
    pub agent: AgentStatus,
}

/// What a site's agent says with its heartbeat; every field `None` until
/// an agent that says it heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// Reports waiting in the agent's outbox.
    pub outbox: Option<u64>,
    /// Why the agent starts no new attempts, while it does not.
    pub starts_paused: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PoolRow {
    pub id: String,
    pub site: String,
    pub name: String,
    /// The pool's spec as JSON (the wire `PoolSpec`).
    pub spec: String,
    pub kind: String,
    pub family: String,
    pub capacity: u64,
    pub price_micro: i64,
    /// Units held by placed and running tasks.
    pub used: u64,
}

#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// The job's spec as JSON (the wire `JobSpec`).
    pub spec: String,
    pub tasks: u64,
    pub units: u64,
    pub retries: u32,
    /// batch, gang (all tasks together or not at all) or service (replicas
    /// started again when they end).
    pub kind: suanwang_core::spec::JobKind,
    pub created_at_ms: i64,
    pub idem: Option<Idem>,
    pub audit: Audit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub spec: String,
    pub state: String,
    pub tasks: u64,
    pub cancel_requested: bool,
    pub created_at_ms: i64,
    pub why: Option<String>,
    /// Task counts by state name.
    pub counts: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    pub index: u64,
    pub state: String,
    pub attempt: u32,
    pub pool: Option<String>,
    pub site: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// The site's name and region and the pool's name, for people.
    pub site_name: Option<String>,
    pub site_region: Option<String>,
    pub pool_name: Option<String>,
}

impl TaskRow {
    /// A task that has no row yet: pending, never placed.
    pub fn never_placed(index: u64) -> TaskRow {
        TaskRow {
            index,
            state: "pending".to_owned(),
            attempt: 0,
            pool: None,
            site: None,
            exit_code: None,
            reason: None,
            site_name: None,
            site_region: None,
            pool_name: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub job: String,
    pub task: Option<u64>,
    pub at_ms: i64,
    pub kind: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentRow {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub pool: String,
    pub state: String,
    pub units: u64,
    /// The job's spec as JSON.
    pub spec: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusIn {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub output_tail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageIn {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub pool: String,
    pub units: u64,
    pub wall_ms: u64,
    /// The pool's device model: the catalogue id when the catalogue knows
    /// it, else as declared.
    pub device_model: String,
    /// Standard compute units, in micro-SCU-hours (docs/metering.md).
    pub scu_micro_hours: u64,
    /// False when the device model was not in the catalogue (factor 0).
    pub scu_rated: bool,
    /// The catalogue version the record was rated with.
    pub catalogue_version: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemOutcome {
    Accepted,
    /// Already recorded: a resend, harmless.
    Duplicate,
    Rejected(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub site: String,
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub pool: String,
    pub units: u64,
    pub wall_ms: u64,
    /// The pool's device model: the catalogue id when the catalogue knows
    /// it, else as declared.
    pub device_model: String,
    /// Standard compute units, in micro-SCU-hours (docs/metering.md).
    pub scu_micro_hours: u64,
    /// False when the device model was not in the catalogue (factor 0).
    pub scu_rated: bool,
    /// The catalogue version the record was rated with.
    pub catalogue_version: String,
    /// The site's name and region and the pool's name, for people.
    pub site_name: String,
    pub site_region: String,
    pub pool_name: String,
}

/// Where a page of a job's usage records starts: after this key, in the
/// order `(task, attempt, seq, site)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageKey {
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub site: String,
}

/// What a scheduling round reads.
#[derive(Clone, Debug, Default)]
pub struct RoundInput {
    /// Active pools of healthy sites, with the units in use.
    pub pools: Vec<(PoolRow, String)>,
    /// The name of every site in `pools`, by site id, so explanations can
    /// name a pool as `site/pool`.
    pub site_names: std::collections::BTreeMap<String, String>,
    /// Jobs with waiting tasks: (id, tenant, spec, pending, live), where live
    /// counts pending + placed + running tasks.
    pub jobs: Vec<WaitingJob>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingJob {
    pub id: String,
    pub tenant: String,
    pub spec: String,
    pub pending: u64,
    pub live: u64,
}

/// A job whose waiting tasks can no longer finish by its deadline
/// (`suanwang_core::deadline::verdict` said `Missed` for it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissedDeadline {
    pub job: String,
    pub deadline_ms: i64,
}

/// What a scheduling round writes, in one transaction.
#[derive(Clone, Debug, Default)]
pub struct RoundWrite {
    /// (job, pool, site, count): place `count` pending tasks of `job`.
    pub placements: Vec<(String, String, String, u64)>,
    /// (job, why): the explanation of each job left waiting; `None` clears it.
    pub whys: Vec<(String, Option<String>)>,
    pub at_ms: i64,
}

/// The durable store. Implementations: [`SqliteStore`], [`PgStore`].
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    async fn ping(&self) -> Result<()>;

    // Principals and tokens.
    async fn principal_count(&self, role: Role) -> Result<u64>;
    /// Creates a principal with its first token. Conflict if the name is taken.
    async fn create_principal(
        &self,
        principal: &PrincipalRow,
        token: &NewToken,
        audit: &Audit,
    ) -> Result<()>;
    /// The live (unrevoked) token with this hash, and its principal.
    async fn principal_by_token(&self, hash: &str) -> Result<Option<(PrincipalRow, String)>>;
    async fn principals(&self, role: Role) -> Result<Vec<PrincipalRow>>;
    async fn create_token(&self, token: &NewToken, audit: &Audit) -> Result<()>;
    async fn tokens(&self, principal: &str) -> Result<Vec<TokenRow>>;
    /// False if the principal has no such live token.
    async fn revoke_token(&self, principal: &str, token: &str, audit: &Audit) -> Result<bool>;

    // Topology.
    async fn topology(&self) -> Result<Option<String>>;
    async fn put_topology(&self, spec: &str, audit: &Audit) -> Result<()>;

    // Sites and pools.
    async fn create_site(&self, site: &SiteRow, token: &NewToken, audit: &Audit) -> Result<()>;
    async fn sites(&self, provider: Option<&str>) -> Result<Vec<SiteRow>>;
    async fn site(&self, id: &str) -> Result<Option<SiteRow>>;
    /// Replaces the site's pools; pools left out are deactivated (their
    /// running tasks go on), never deleted, so history keeps its names.
    async fn put_pools(&self, site: &str, pools: &[PoolRow], audit: &Audit) -> Result<()>;
    async fn pools(&self, site: &str) -> Result<Vec<PoolRow>>;
    /// Every pool of the site, active or not: (id, kind, spec JSON). What a
    /// usage report is rated with.
    async fn pool_specs(&self, site: &str) -> Result<Vec<(String, String, String)>>;
    /// Renews the site's lease until `expires_at_ms`.
    /// Extends `site`'s lease to `expires_at_ms` and records what its agent
    /// said.
    async fn heartbeat(&self, site: &str, expires_at_ms: i64, agent: &AgentStatus) -> Result<()>;
    /// Pushes every healthy lease to at least `expires_at_ms` (a new leader
    /// must not blame sites for the time no leader was watching).
    async fn extend_leases(&self, expires_at_ms: i64) -> Result<()>;
    /// Marks sites whose lease lapsed before `now_ms` unhealthy; their placed
    /// and running tasks are lost: back to pending while retries are left.
    /// Returns the number of tasks affected.
    async fn expire_leases(&self, now_ms: i64) -> Result<u64>;
    /// The tasks the site should be running, and the site's version.
    async fn assignments(&self, site: &str) -> Result<(i64, Vec<AssignmentRow>)>;
    async fn site_version(&self, site: &str) -> Result<i64>;
    async fn report(
        &self,
        site: &str,
        statuses: &[StatusIn],
        usage: &[UsageIn],
        now_ms: i64,
    ) -> Result<(Vec<ItemOutcome>, Vec<ItemOutcome>)>;

    // Jobs.
    /// Inserts jobs with their tasks, idempotency and audit records, all in
    /// one transaction (group commit). One outcome per job, in order.
    async fn submit_batch(&self, jobs: &[NewJob]) -> Result<Vec<IdemOutcome>>;
    async fn idempotent(&self, principal: &str, key: &str) -> Result<Option<Idem>>;
    /// Deletes up to `limit` idempotency records created before
    /// `created_before_ms`, oldest first; returns how many. A key used again
    /// after its record is gone is a new request.
    async fn prune_idempotency(&self, created_before_ms: i64, limit: u32) -> Result<u64>;
    async fn job(&self, id: &str) -> Result<Option<JobRow>>;
    async fn jobs(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRow>>;
    /// A page of a job's tasks in index order: at most `limit`, with index
    /// above `after`; never-placed tasks included (they have no row).
    async fn tasks(&self, job: &str, after: Option<u64>, limit: u32) -> Result<Vec<TaskRow>>;
    async fn events(&self, job: &str, after_seq: i64, limit: u32) -> Result<Vec<EventRow>>;
    /// Cancels every unfinished task. Records `idem` in the same transaction.
    async fn cancel(&self, job: &str, idem: Option<&Idem>, audit: &Audit) -> Result<IdemOutcome>;
    /// A page of a job's usage records in key order, after `after`.
    async fn usage(&self, job: &str, after: Option<&UsageKey>, limit: u32)
        -> Result<Vec<UsageRow>>;
    async fn job_states(&self) -> Result<Vec<(String, u64)>>;

    // Scheduling.
    /// Takes or confirms the scheduling leadership; false if another process
    /// holds it.
    async fn try_lead(&self) -> Result<bool>;
    async fn round_input(&self) -> Result<RoundInput>;
    /// Fails every waiting task of each job in `missed` (pending rows and
    /// the never-placed tail, which get their rows) with the reason
    /// `deadline`, by `TaskEvent::DeadlineMissed`, in one transaction: jobs
    /// locked in id order, then tasks, then sites. The job then follows its
    /// rules: a gang's placed and running members are cancelled. One event
    /// `deadline` per job. Jobs cancelled or finished meanwhile are left as
    /// they are. Returns the number of tasks failed.
    async fn fail_missed_deadlines(&self, missed: &[MissedDeadline], now_ms: i64) -> Result<u64>;
    async fn apply_round(&self, round: &RoundWrite) -> Result<()>;
}
