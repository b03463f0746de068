//! The store's rows: neither JSON bodies nor domain objects (the server
//! converts at its edge), but typed: states, kinds and roles are the
//! domain's enums, counts are unsigned. A stored value that is not one of
//! them is [`StoreError::Corrupt`](crate::StoreError::Corrupt) when read,
//! never a default.

use suanwang_core::lifecycle::{EventKind, JobState, TaskState};
use suanwang_core::machine::round::Placed;
use suanwang_core::price::{AttemptPrice, PoolPrice};
use suanwang_core::spec::JobKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Operator,
    Tenant,
    Provider,
    Site,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::Tenant, Role::Provider, Role::Site];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Tenant => "tenant",
            Role::Provider => "provider",
            Role::Site => "site",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
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
    pub kind: JobKind,
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
    pub state: JobState,
    pub tasks: u64,
    pub cancel_requested: bool,
    pub created_at_ms: i64,
    pub why: Option<String>,
    /// Task counts by state, in `TaskState::ALL` order, only those not zero.
    pub counts: Vec<(TaskState, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    pub index: u64,
    pub state: TaskState,
    pub attempt: u32,
    pub pool: Option<String>,
    pub site: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// The site's name and region and the pool's name, for people.
    pub site_name: Option<String>,
    pub site_region: Option<String>,
    pub pool_name: Option<String>,
    /// When and at what its latest attempt was placed; `None` before its
    /// first placement (or for attempts placed before prices were kept).
    pub placed: Option<PlacedAt>,
}

/// When and at what price an attempt was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacedAt {
    pub at_ms: i64,
    pub price: AttemptPrice,
}

impl TaskRow {
    /// A task that has no row yet: pending, never placed.
    pub fn never_placed(index: u64) -> TaskRow {
        TaskRow {
            index,
            state: TaskState::Pending,
            attempt: 0,
            pool: None,
            site: None,
            exit_code: None,
            reason: None,
            site_name: None,
            site_region: None,
            pool_name: None,
            placed: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub job: String,
    pub task: Option<u64>,
    pub at_ms: i64,
    pub kind: EventKind,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignmentRow {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub pool: String,
    pub state: TaskState,
    pub units: u64,
    /// The job's spec as JSON.
    pub spec: String,
}

/// A site's status of one attempt: the state machine's own type.
pub use suanwang_core::machine::report::Status as StatusIn;

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
    /// What it drew, from the pool's power, PUE and grid
    /// (`core::bill::rate::energy`): reported on bills, never charged.
    pub energy_wh: u64,
    pub co2_g: u64,
}

/// The outcome of one report item: the state machine's own type.
pub use suanwang_core::machine::Outcome as ItemOutcome;

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

/// A pool of a site, as a usage report is rated with it: active or not.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PoolSpecRow {
    pub id: String,
    /// The pool's resource kind (`gpu`, `cpu`, ...).
    pub kind: String,
    /// The pool's spec as JSON (the wire `PoolSpec`).
    pub spec: String,
}

/// A pool a round may place on, with its site's region.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundPoolRow {
    pub pool: PoolRow,
    pub region: String,
    /// The pool's newest price row; `None` before its first round.
    pub last_price: Option<PoolPrice>,
}

/// What a scheduling round reads.
#[derive(Clone, Debug, Default)]
pub struct RoundInput {
    /// Active pools of healthy sites, with the units in use.
    pub pools: Vec<RoundPoolRow>,
    /// The name of every site in `pools`, by site id, so explanations can
    /// name a pool as `site/pool`.
    pub site_names: std::collections::BTreeMap<String, String>,
    /// Jobs with waiting tasks: (id, tenant, spec, pending, live), where live
    /// counts pending + placed + running tasks.
    pub jobs: Vec<WaitingJob>,
    /// What each waiting job's tenant can hold (`core::bill::spare_micro`
    /// of its wallet), read without locks: the round's write holds under
    /// them, and fails whole if a wallet shrank meanwhile.
    pub wallets: std::collections::BTreeMap<String, i64>,
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
    /// Place `count` pending tasks of `job` on `pool` at `site`, at `price`.
    pub placements: Vec<Placed>,
    /// (job, why): the explanation of each job left waiting; `None` clears it.
    pub whys: Vec<(String, Option<String>)>,
    /// The pools whose price changed since their newest price row
    /// (`core::price::changed`): a new row each, at `at_ms`.
    pub prices: Vec<PoolPriced>,
    /// What each placed job's tasks reserve (`core::bill::budget::holds`):
    /// one hold per job, `core::bill::HoldRef { job, round_at_ms: at_ms }`.
    pub holds: Vec<RoundHold>,
    pub at_ms: i64,
}

/// The hold of one job's placements in a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundHold {
    pub job: String,
    pub tenant: String,
    /// The topology region of the job's data (the carrier links).
    pub data_region: String,
    /// Tasks placed (each an attempt).
    pub attempts: u64,
    /// 0 when every placement is free: no ledger transfer, the row only.
    pub amount_micro: i64,
}

/// A pool's prices in a round, to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPriced {
    pub pool: String,
    pub price: PoolPrice,
}
/// Which pools the market lists: all active pools, or those of one kind,
/// family or region (each `None`: any).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarketFilter {
    pub kind: Option<suanwang_place::Kind>,
    pub family: Option<String>,
    pub region: Option<String>,
}

/// An active pool as the market shows it, with its site and its newest
/// price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketRow {
    pub pool: String,
    pub pool_name: String,
    pub site: String,
    pub site_name: String,
    pub region: String,
    pub healthy: bool,
    pub kind: suanwang_place::Kind,
    pub family: String,
    /// The pool's spec as JSON (the wire `PoolSpec`): its device model.
    pub spec: String,
    pub capacity: u64,
    /// Units held by placed and running tasks.
    pub used: u64,
    pub list_micro: i64,
    /// The newest price row's clearing price and time; `None` before the
    /// pool's first round.
    pub clearing: Option<(i64, i64)>,
}

/// One row of a pool's price history: its prices from `at_ms` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceRow {
    pub at_ms: i64,
    pub price: PoolPrice,
}

/// A ledger transfer as stored: its place in history order, and the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerTransferRow {
    /// History order: increasing, with gaps.
    pub seq: i64,
    pub record: suanwang_ledger::Record,
}

/// What `LedgerStore::ledger_check` read and found consistent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerCheck {
    pub accounts: u64,
    pub transfers: u64,
    pub open_pendings: u64,
}

/// Which bill lines to read: a tenant's (or everyone's, for the
/// operator), of one job, rated within `[from_ms, to_ms)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillFilter {
    pub tenant: Option<String>,
    pub job: Option<String>,
    pub rated_ms: Option<(i64, i64)>,
}

/// Where a page of bill lines starts: after this line's key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BillCursor {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub site: String,
}

/// One bill line: a usage record rated (`core::bill::rate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillLineRow {
    pub key: BillCursor,
    pub tenant: String,
    pub pool: String,
    pub units: u64,
    pub wall_ms: u64,
    pub placed_at_ms: i64,
    pub price_micro: i64,
    pub compute_micro: i64,
    pub data_mb: u64,
    pub transfer_micro_per_gb: i64,
    pub transfer_micro: i64,
    pub energy_wh: u64,
    pub co2_g: u64,
    pub scu_micro_hours: u64,
    pub catalogue_version: String,
    pub rated_at_ms: i64,
}

/// The sums over every line a filter selects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BillTotals {
    pub lines: u64,
    pub unit_ms: u64,
    pub compute_micro: i64,
    pub transfer_micro: i64,
    pub energy_wh: u64,
    pub co2_g: u64,
    pub scu_micro_hours: u64,
}

/// What one pool earned: the sums of its bill lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarningsRow {
    pub site: String,
    pub pool: String,
    pub lines: u64,
    pub unit_ms: u64,
    pub compute_micro: i64,
    pub transfer_micro: i64,
}
