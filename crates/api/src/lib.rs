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
    #[serde(default)]
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
    pub id: String,
    pub name: String,
    pub lat_deg: f64,
    pub lon_deg: f64,
}

/// Regions and the matrices between them, in region order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    pub regions: Vec<RegionSpec>,
    pub latency_ms: Vec<Vec<f64>>,
    pub transfer_yuan_per_gb: Vec<Vec<f64>>,
    pub carbon_yuan_per_kg: f64,
}

// ---------------------------------------------------------------------------
// Sites and pools.

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    pub name: String,
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
    pub name: String,
    /// `cpu`, `gpu` or `hpc`.
    pub kind: String,
    pub family: String,
    #[serde(default)]
    pub device_model: String,
    /// Units: cores, accelerators or nodes.
    pub capacity: u64,
    pub price_yuan_per_unit_hour: f64,
    #[serde(default)]
    pub power_kw_per_unit: f64,
    #[serde(default = "one")]
    pub pue: f64,
    #[serde(default)]
    pub grid_kg_co2_per_kwh: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPools {
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
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    pub site: String,
    pub expires_at_ms: i64,
    pub ttl_s: u64,
}

// ---------------------------------------------------------------------------
// Jobs.

/// A job as a tenant submits it (TOML or JSON; the CLI sends JSON).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    /// `batch` (independent tasks), `gang` (all tasks together in one pool)
    /// or `service` (replicas that stay up).
    #[serde(default = "batch")]
    pub kind: String,
    pub tasks: u64,
    pub resources: ResourcesSpec,
    pub run: RunSpec,
    /// Estimated run time of one task.
    pub hours: f64,
    /// Most the tenant pays, yuan per unit-hour.
    pub bid_yuan_per_unit_hour: f64,
    /// Region the job's users are in.
    pub origin: String,
    #[serde(default)]
    pub latency_ms_max: Option<f64>,
    /// Where the input data lives; defaults to the origin.
    #[serde(default)]
    pub data_region: Option<String>,
    #[serde(default)]
    pub data_gb: f64,
    #[serde(default)]
    pub allowed_regions: Option<Vec<String>>,
    /// RFC 3339, e.g. `2026-12-01T00:00:00Z`.
    #[serde(default)]
    pub deadline: Option<String>,
    /// How many times a failed or lost task runs again.
    #[serde(default = "retries_default")]
    pub retries: u32,
}

fn batch() -> String {
    "batch".to_owned()
}

fn retries_default() -> u32 {
    2
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    /// `cpu`, `gpu` or `hpc`.
    pub kind: String,
    #[serde(default = "one_u64")]
    pub units: u64,
    /// Acceptable chip families; empty means any.
    #[serde(default)]
    pub families: Vec<String>,
    #[serde(default)]
    pub memory_gib: f64,
}

fn one_u64() -> u64 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The batch script for Slurm sites; other executors run `command`.
    #[serde(default)]
    pub slurm_script: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub state: String,
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
    pub state: String,
    pub attempt: u32,
    pub pool: Option<String>,
    pub site: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub at_ms: i64,
    pub task: Option<u64>,
    pub kind: String,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Why {
    pub job: String,
    pub state: String,
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
    pub state: String,
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
    pub task: u64,
    pub attempt: u32,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
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
    pub task: u64,
    pub attempt: u32,
    pub seq: u32,
    pub pool: String,
    pub units: u64,
    pub wall_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    #[serde(default)]
    pub statuses: Vec<StatusReport>,
    #[serde(default)]
    pub usage: Vec<UsageReport>,
}

/// Per item of a report: `accepted`, `duplicate` (already recorded, fine) or
/// `rejected` with a reason (e.g. a stale attempt).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReportOutcome {
    pub outcome: String,
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
}

/// A job's id and state, e.g. the answer to a cancel.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobRef {
    pub id: String,
    pub state: String,
}
