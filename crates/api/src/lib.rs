//! The wire types of the HTTP API (`/v1`): request and response bodies as
//! they travel in JSON. Shared by the server and the CLI client so the two
//! cannot drift. Domain types live in `suanwang-core`; these are their
//! serialisable twins, converted at the edge (see ARCHITECTURE.md).
//!
//! Every request body rejects unknown fields, so a typo is an error that
//! names the field, not a silently ignored setting. Response bodies accept
//! them: a server may add a field (as `AssignmentView::memory_gib` was
//! added) without breaking the CLIs and agents already deployed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The schema's rule for names (`core::spec::check_name`): 1 to 128
/// characters, no control characters, not only spaces.
pub const NAME_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";
/// The rule for ids that people choose (`core::topology::check_id`):
/// regions, pools, chip families.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,128}$";

/// A job's kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Independent tasks.
    #[default]
    Batch,
    /// All tasks together in one pool, or none.
    Gang,
    /// Replicas that stay up.
    Service,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Batch, JobKind::Gang, JobKind::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Batch => "batch",
            JobKind::Gang => "gang",
            JobKind::Service => "service",
        }
    }
}

/// What a unit of a pool is: a core, an accelerator or a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Cpu,
    Gpu,
    Hpc,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 3] = [ResourceKind::Cpu, ResourceKind::Gpu, ResourceKind::Hpc];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Cpu => "cpu",
            ResourceKind::Gpu => "gpu",
            ResourceKind::Hpc => "hpc",
        }
    }
}

/// The state a site reports for an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportState {
    Running,
    Succeeded,
    Failed,
}

impl ReportState {
    pub const ALL: [ReportState; 3] = [
        ReportState::Running,
        ReportState::Succeeded,
        ReportState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Running => "running",
            ReportState::Succeeded => "succeeded",
            ReportState::Failed => "failed",
        }
    }
}

/// A task's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Pending,
    Placed,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Lost,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::Pending,
        TaskState::Placed,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Placed => "placed",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Lost => "lost",
        }
    }

    /// Succeeded, failed, cancelled or lost: the task changes no more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled | TaskState::Lost
        )
    }
}

/// A job's state, derived from its tasks' states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Placed,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Placed,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Placed => "placed",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed or cancelled: the job changes no more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// The server's answer to one item of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Recorded.
    Accepted,
    /// Already recorded: fine.
    Duplicate,
    /// Refused, with a reason (e.g. a stale attempt).
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Accepted, Outcome::Duplicate, Outcome::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
        }
    }
}

/// What a job's event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Submitted,
    Placed,
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A task's site lost its lease.
    Lost,
    /// A task ended or went back with its gang.
    Gang,
    /// Waiting tasks failed at their job's deadline.
    Deadline,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Submitted,
        EventKind::Placed,
        EventKind::Pending,
        EventKind::Running,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::Cancelled,
        EventKind::Lost,
        EventKind::Gang,
        EventKind::Deadline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Placed => "placed",
            EventKind::Pending => "pending",
            EventKind::Running => "running",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::Cancelled => "cancelled",
            EventKind::Lost => "lost",
            EventKind::Gang => "gang",
            EventKind::Deadline => "deadline",
        }
    }
}

/// Media type and header names the API relies on.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The error body of every non-2xx answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid`, `unauthorized`, `not-found`,
    /// `conflict`, `idempotency-mismatch`, `rate-limited`, `too-large`, `internal`, ...
    pub code: String,
    pub message: String,
    /// JSON path of the offending field, when one field is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

// ---------------------------------------------------------------------------
// Principals and tokens.

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

/// A new principal with its first token, shown once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PrincipalCreated {
    pub id: String,
    pub name: String,
    pub role: String,
    pub token: String,
    pub token_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PrincipalView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub principal: PrincipalView,
    pub token_id: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Default `api`.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    pub token: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub revoked: bool,
}

// ---------------------------------------------------------------------------
// Topology.

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub id: String,
    pub name: String,
    #[schema(minimum = -90, maximum = 90)]
    pub lat_deg: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lon_deg: f64,
}

/// Regions and the matrices between them, in region order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// Unique ids.
    #[schema(min_items = 1, max_items = 4096)]
    pub regions: Vec<RegionSpec>,
    /// One row per region, one column per region; numbers >= 0.
    #[schema(min_items = 1, max_items = 4096)]
    pub latency_ms: Vec<Vec<f64>>,
    /// One row per region, one column per region; numbers >= 0.
    #[schema(min_items = 1, max_items = 4096)]
    pub transfer_yuan_per_gb: Vec<Vec<f64>>,
    #[schema(minimum = 0)]
    pub carbon_yuan_per_kg: f64,
}

// ---------------------------------------------------------------------------
// Sites and pools.

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// A region of the topology.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub region: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteCreated {
    pub id: String,
    pub name: String,
    pub region: String,
    /// The site agent's token, shown once.
    pub token: String,
    pub token_id: String,
}

/// One pool as a provider declares it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Unique within the site.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub name: String,
    /// `cpu`, `gpu` or `hpc`.
    pub kind: ResourceKind,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub family: String,
    #[serde(default)]
    #[schema(max_length = 128)]
    pub device_model: String,
    /// Units: cores, accelerators or nodes.
    #[schema(maximum = 10_000_000)]
    pub capacity: u64,
    /// Kept to the micro-yuan (rounded to nearest).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub price_yuan_per_unit_hour: f64,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub power_kw_per_unit: f64,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 10)]
    pub pue: f64,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10)]
    pub grid_kg_co2_per_kwh: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPools {
    /// Names unique.
    #[schema(max_items = 256)]
    pub pools: Vec<PoolSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolView {
    pub id: String,
    #[serde(flatten)]
    pub spec: PoolSpec,
    /// Units taken by placed and running tasks.
    pub used: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteView {
    pub id: String,
    pub name: String,
    pub region: String,
    pub provider: String,
    pub healthy: bool,
    /// When the current lease lapses; absent before the first heartbeat.
    pub lease_expires_at_ms: Option<i64>,
    pub pools: Vec<PoolView>,
    /// Reports waiting in the agent's outbox, as its last heartbeat said;
    /// absent if it did not say.
    #[serde(default)]
    pub agent_outbox: Option<u64>,
    /// Why the agent starts no new attempts, as its last heartbeat said;
    /// absent while it starts them.
    #[serde(default)]
    pub agent_starts_paused: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    pub site: String,
    pub expires_at_ms: i64,
    pub ttl_s: u64,
}

/// What an agent says with its heartbeat. The body is optional: an empty
/// `POST /v1/sites/{id}/heartbeat` is a plain heartbeat (and says nothing:
/// what an earlier heartbeat said is cleared). The site's view
/// (`GET /v1/sites/{id}`) shows what the last heartbeat said.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Reports waiting in the agent's outbox for the server.
    #[serde(default)]
    #[schema(maximum = 100_000_000)]
    pub outbox: Option<u64>,
    /// Set while the agent starts no new attempts, saying why (its outbox
    /// reached the site file's `outbox_max`); absent when it starts them.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 1024)]
    pub starts_paused: Option<String>,
}

/// The most reports a heartbeat may say wait in an outbox.
pub const HEARTBEAT_OUTBOX_MAX: u64 = 100_000_000;
/// The longest `starts_paused` text, in characters.
pub const HEARTBEAT_TEXT_CHARS_MAX: usize = 1024;

// ---------------------------------------------------------------------------
// Jobs.

/// A job as a tenant submits it (TOML or JSON; the CLI sends JSON).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// `batch` (independent tasks), `gang` (all tasks together in one pool)
    /// or `service` (replicas that stay up).
    #[serde(default)]
    pub kind: JobKind,
    #[schema(minimum = 1, maximum = 100_000)]
    pub tasks: u64,
    pub resources: ResourcesSpec,
    pub run: RunSpec,
    /// Estimated run time of one task.
    #[schema(exclusive_minimum = 0, maximum = 10_000)]
    pub hours: f64,
    /// Most the tenant pays, yuan per unit-hour; kept to the micro-yuan
    /// (rounded to nearest).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub bid_yuan_per_unit_hour: f64,
    /// Region the job's users are in: a region of the topology.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub origin: String,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub latency_ms_max: Option<f64>,
    /// Where the input data lives (a region of the topology); defaults to
    /// the origin.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub data_region: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub data_gb: f64,
    /// Regions of the topology the job may run in; absent: anywhere.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 4096)]
    pub allowed_regions: Option<Vec<String>>,
    /// When every task must have finished: RFC 3339 with an offset, e.g.
    /// `2026-12-01T08:00:00+08:00`. A task is started only while
    /// `now + hours <= deadline`; one still waiting after that fails with
    /// the reason `deadline`. Refused (422) if already out of reach.
    #[serde(default)]
    #[schema(format = DateTime, max_length = 64)]
    pub deadline: Option<String>,
    /// How many times a failed or lost task runs again.
    #[serde(default = "retries_default")]
    #[schema(maximum = 100)]
    pub retries: u32,
}

fn retries_default() -> u32 {
    2
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    /// `cpu`, `gpu` or `hpc`.
    pub kind: ResourceKind,
    #[serde(default = "one_u64")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub units: u64,
    /// Acceptable chip families; empty means any.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub families: Vec<String>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub memory_gib: f64,
}

fn one_u64() -> u64 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Without NUL.
    #[schema(min_length = 1, max_length = 4096, pattern = "^[^\\u0000]*$")]
    pub command: String,
    /// Each at most 4,096 characters, without NUL.
    #[serde(default)]
    #[schema(max_items = 256)]
    pub args: Vec<String>,
    /// Names of letters, digits and `_`, not starting with a digit nor
    /// with `SUANWANG_`; values at most 4,096 characters without NUL.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The batch script for Slurm sites; other executors run `command`.
    #[serde(default)]
    #[schema(max_length = 65_536)]
    pub slurm_script: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub state: JobState,
    pub created_at_ms: i64,
    /// Tasks by state, e.g. `{"pending": 3, "running": 1}`.
    pub tasks: BTreeMap<String, u64>,
    pub spec: JobSpec,
    /// Why the job waits, from the last scheduling round.
    #[serde(default)]
    pub why: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    pub index: u64,
    pub state: TaskState,
    pub attempt: u32,
    pub pool: Option<String>,
    pub site: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// The name and region of `site`, and the name of `pool`, for people;
    /// absent while the task has no site.
    #[serde(default)]
    pub site_name: Option<String>,
    #[serde(default)]
    pub site_region: Option<String>,
    #[serde(default)]
    pub pool_name: Option<String>,
    /// When and at what price the latest attempt was placed; absent before
    /// the first placement.
    #[serde(default)]
    pub placed: Option<PlacedView>,
}

/// When and at what price an attempt was placed, in integer micro-yuan
/// (10^-6 yuan). Pay-as-clear: the attempt pays its pool's market price of
/// the round that placed it, per unit-hour of metered use, never more than
/// its bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacedView {
    /// The round's time, milliseconds since the epoch.
    pub at_ms: i64,
    /// The pool's market price then: list + clearing.
    pub price_micro_yuan_per_unit_hour: i64,
    /// Moving one GB from the job's data region to the pool's region.
    pub transfer_micro_yuan_per_gb: i64,
    /// The job's bid.
    pub bid_micro_yuan_per_unit_hour: i64,
}

/// One page of a job's tasks, in index order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<TaskView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub at_ms: i64,
    pub task: Option<u64>,
    pub kind: EventKind,
    pub detail: String,
}

/// One page of a job's events, in `seq` order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Why {
    pub job: String,
    pub state: JobState,
    pub why: Option<String>,
}

// ---------------------------------------------------------------------------
// Agent protocol.

/// A task a site should be running, level-triggered: the agent converges on
/// this list, and stops whatever it runs that is not on it (a cancelled job,
/// a task placed again elsewhere).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AssignmentView {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub pool: String,
    pub state: TaskState,
    pub units: u64,
    pub hours: f64,
    pub run: RunSpec,
    /// Memory of one task in GiB, the job's `resources.memory_gib`; the
    /// agent limits the task to it where it can. 0: no limit asked (and
    /// what a server that predates the field means by omitting it).
    #[serde(default)]
    pub memory_gib: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Assignments {
    /// Changes whenever the list may have changed; pass it back as
    /// `version` to wait for the next change.
    pub version: i64,
    pub assignments: Vec<AssignmentView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    pub job: String,
    #[schema(maximum = 9_223_372_036_854_775_807_i64)]
    pub task: u64,
    #[schema(format = Int64, maximum = 4_294_967_295_i64)]
    pub attempt: u32,
    /// `running`, `succeeded` or `failed`.
    pub state: ReportState,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub reason: Option<String>,
    /// A bounded tail of the task's output.
    #[serde(default)]
    pub output_tail: Option<String>,
}

/// Raw usage: `units` of `pool` held for `wall_ms`. The key (site, job,
/// task, attempt, seq) makes a resent record harmless.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    pub job: String,
    #[schema(maximum = 9_223_372_036_854_775_807_i64)]
    pub task: u64,
    #[schema(format = Int64, maximum = 4_294_967_295_i64)]
    pub attempt: u32,
    #[schema(format = Int64, maximum = 4_294_967_295_i64)]
    pub seq: u32,
    pub pool: String,
    #[schema(maximum = 9_223_372_036_854_775_807_i64)]
    pub units: u64,
    #[schema(maximum = 9_223_372_036_854_775_807_i64)]
    pub wall_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// At most 10,000 items in all, statuses and usage together.
    #[serde(default)]
    #[schema(max_items = 10_000)]
    pub statuses: Vec<StatusReport>,
    #[serde(default)]
    #[schema(max_items = 10_000)]
    pub usage: Vec<UsageReport>,
}

/// Per item of a report: `accepted`, `duplicate` (already recorded, fine) or
/// `rejected` with a reason (e.g. a stale attempt).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReportOutcome {
    pub outcome: Outcome,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportsAnswer {
    pub statuses: Vec<ReportOutcome>,
    pub usage: Vec<ReportOutcome>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub site: String,
    pub pool: String,
    pub units: u64,
    pub wall_ms: u64,
    /// The pool's device model: the catalogue id when the catalogue knows
    /// it, else as the pool declared it.
    pub device_model: String,
    /// Standard compute units in micro-SCU-hours (10^-6 SCU-hour; one
    /// SCU-hour is one hour of 1 TFLOPS FP32-equivalent, docs/metering.md),
    /// rounded to nearest once per record.
    pub scu_micro_hours: u64,
    /// False when the device model is not in the catalogue (or does not fit
    /// the pool's kind): rated at factor 0, not guessed.
    pub scu_rated: bool,
    /// The catalogue version the record was rated with.
    pub catalogue_version: String,
    /// The name and region of `site`, and the name of `pool`, for people.
    #[serde(default)]
    pub site_name: Option<String>,
    #[serde(default)]
    pub site_region: Option<String>,
    #[serde(default)]
    pub pool_name: Option<String>,
}

/// One page of a job's usage records, in the order (task, attempt, seq,
/// site).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UsagePage {
    pub usage: Vec<UsageView>,
    /// Pass as `after` for the next page (`TASK-ATTEMPT-SEQ-SITE`); absent
    /// on the last page.
    pub next: Option<String>,
}

/// A job's id and state, e.g. the answer to a cancel.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobRef {
    pub id: String,
    pub state: JobState,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every enum's JSON is its `as_str`, and reads back.
    fn agree<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy + std::fmt::Debug + PartialEq + Serialize + serde::de::DeserializeOwned,
    {
        for &value in all {
            let json = serde_json::to_value(value).unwrap();
            assert_eq!(json, serde_json::Value::from(as_str(value)), "{value:?}");
            assert_eq!(serde_json::from_value::<T>(json).unwrap(), value);
        }
    }

    #[test]
    fn enums_travel_as_their_names() {
        agree(&JobKind::ALL, JobKind::as_str);
        agree(&ResourceKind::ALL, ResourceKind::as_str);
        agree(&ReportState::ALL, ReportState::as_str);
        agree(&TaskState::ALL, TaskState::as_str);
        agree(&JobState::ALL, JobState::as_str);
        agree(&Outcome::ALL, Outcome::as_str);
        agree(&EventKind::ALL, EventKind::as_str);
    }
}

/// One pool of the network as the market shows it to any signed-in caller:
/// what it is, where, what it costs now, and how much of it is free. Money
/// is integer micro-yuan (10^-6 yuan) per unit-hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketPool {
    pub pool: String,
    pub pool_name: String,
    pub site: String,
    pub site_name: String,
    pub region: String,
    /// Whether the site's agent holds its lease now: only healthy sites'
    /// pools are offered in rounds.
    pub healthy: bool,
    pub kind: ResourceKind,
    pub family: String,
    pub device_model: String,
    pub capacity_units: u64,
    /// Capacity less the units placed and running tasks hold.
    pub free_units: u64,
    /// The provider's list price.
    pub list_micro_yuan_per_unit_hour: i64,
    /// The congestion price of the last round that offered the pool, on
    /// top of its list price then; absent before its first round.
    pub clearing_micro_yuan_per_unit_hour: Option<i64>,
    /// When that round was, milliseconds since the epoch.
    pub priced_at_ms: Option<i64>,
    /// What a task placed now would pay at the last clearing: the list
    /// price plus the last clearing price (the list price alone before any).
    pub market_micro_yuan_per_unit_hour: i64,
    /// Standard compute units per unit (the metering catalogue's exact
    /// factor as a decimal); absent when the catalogue does not rate the
    /// pool's device model.
    pub scu_per_unit: Option<String>,
    /// The market price per SCU-hour, rounded to the nearest micro-yuan;
    /// absent with `scu_per_unit`.
    pub market_micro_yuan_per_scu_hour: Option<i64>,
}

/// One page of the market, in pool id order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MarketPage {
    pub pools: Vec<MarketPool>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// Where a job would run now and what it would cost: the current round
/// solved with the job added (nothing is written). Money is integer
/// micro-yuan; each site's estimate is its tasks' units × the job's hours
/// × the pool's market price, plus moving each task's data once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quote {
    pub tasks: u64,
    /// How many of them this round would place.
    pub tasks_placed: u64,
    /// One line per pool the job's tasks would go to.
    pub lines: Vec<QuoteLine>,
    pub total_micro_yuan: i64,
    /// Why the tasks left over would wait (the engine's explanation).
    pub why: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteLine {
    pub site: String,
    pub site_name: String,
    pub pool: String,
    pub pool_name: String,
    pub region: String,
    pub tasks: u64,
    /// The pool's market price (list + clearing), what each task would pay.
    pub price_micro_yuan_per_unit_hour: i64,
    pub transfer_micro_yuan_per_gb: i64,
    pub compute_micro_yuan: i64,
    pub transfer_micro_yuan: i64,
    pub total_micro_yuan: i64,
}

/// One bill line: one usage record rated at the price its attempt was
/// placed at. Money is integer micro-yuan, energy whole Wh, carbon whole
/// grams of CO2e (reported, never charged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillLine {
    /// The usage record's key: site, job, task, attempt, seq.
    pub site: String,
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub pool: String,
    pub units: u64,
    pub wall_ms: u64,
    /// Standard compute units, micro-SCU-hours, and the catalogue version.
    pub scu_micro_hours: u64,
    pub catalogue_version: String,
    /// The price source: the round (its time) that placed the attempt on
    /// `pool`, and the market price it cleared there.
    pub placed_at_ms: i64,
    pub price_micro_yuan_per_unit_hour: i64,
    /// `units × wall_ms × price / 3,600,000`, the job's lines rounded so
    /// their running total is the exact total rounded half up.
    pub compute_micro_yuan: i64,
    /// Data moved (billed with an attempt's first record) and its charge.
    pub data_mb: u64,
    pub transfer_micro_yuan_per_gb: i64,
    pub transfer_micro_yuan: i64,
    pub energy_wh: u64,
    pub co2_g: u64,
    pub rated_at_ms: i64,
}

/// Sums over every line the query selects (not just this page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillTotals {
    pub lines: u64,
    /// Σ units × wall_ms: the raw quantity, in unit-milliseconds.
    pub unit_ms: u64,
    pub scu_micro_hours: u64,
    pub compute_micro_yuan: i64,
    pub transfer_micro_yuan: i64,
    pub total_micro_yuan: i64,
    pub energy_wh: u64,
    pub co2_g: u64,
}

/// A page of a bill.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BillPage {
    pub lines: Vec<BillLine>,
    pub totals: BillTotals,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// A tenant's wallet, integer micro-yuan. `available = balance − held`;
/// holds and charges may use it down to `−credit_limit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletView {
    pub tenant: String,
    /// The ledger's asset: `CNY`.
    pub asset: String,
    /// False until the first top-up or credit: nothing was ever in it.
    pub opened: bool,
    /// Posted credits less posted debits.
    pub balance_micro_yuan: i64,
    /// Reserved by the holds of placed attempts.
    pub held_micro_yuan: i64,
    pub available_micro_yuan: i64,
    /// The credit the operator granted: how far below zero it may go.
    pub credit_limit_micro_yuan: i64,
    /// Usage charged beyond what the wallet could pay: owed.
    pub arrears_micro_yuan: i64,
}

/// A top-up by the operator. `topup_id` is the caller's: sending the same
/// top-up again is harmless; the same id with another amount is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub topup_id: String,
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub amount_micro_yuan: i64,
}

/// The credit the operator grants a tenant (0 withdraws it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditLimit {
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub credit_limit_micro_yuan: i64,
}

/// What one pool of a provider earned from the usage rated on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarningsLine {
    pub site: String,
    pub pool: String,
    pub lines: u64,
    /// Σ units × wall_ms, unit-milliseconds.
    pub unit_ms: u64,
    /// What tenants were billed for compute on the pool.
    pub compute_micro_yuan: i64,
    /// The platform's fee on it: `floor(compute × fee_bps / 10,000)`.
    pub fee_micro_yuan: i64,
    /// The provider's share: compute less the fee.
    pub earned_micro_yuan: i64,
}

/// A provider's earnings, per pool, from bill lines; `settled_micro_yuan`
/// is what its ledger earnings account has received so far.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EarningsPage {
    pub provider: String,
    pub fee_bps: i64,
    pub pools: Vec<EarningsLine>,
    pub earned_micro_yuan: i64,
    pub settled_micro_yuan: i64,
    pub next: Option<String>,
}

/// The ledger's stored balances checked against its history: every
/// account's totals recomputed from its transfers, debits equal to credits,
/// no account below its floor. A mismatch is not this answer: it is an
/// error naming the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerCheckView {
    pub accounts: u64,
    pub transfers: u64,
    pub open_pendings: u64,
}
