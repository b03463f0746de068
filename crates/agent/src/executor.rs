//! The executor interface: how an agent starts, watches and stops one task
//! attempt. Implementations: `process` (local child processes) and `slurm`
//! (batch jobs through sbatch/squeue/sacct/scancel); Kubernetes can follow.
//!
//! An executor is restart-safe through its `Handle`: a small string the
//! agent persists in its state directory right after `start` returns (a
//! process id with its start time, a Slurm job id). After a crash the agent
//! polls the handles it finds instead of starting the tasks again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use suanwang_api::RunSpec;

/// One task attempt to run.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
    /// The pool's name in the site file.
    pub pool: String,
    /// Units of the pool the task holds: cores, accelerators or nodes.
    pub units: u64,
    /// Estimated hours; an executor may derive a wall-time limit from it.
    pub hours: f64,
    pub run: RunSpec,
    /// The attempt's own working directory (created by the agent, empty).
    /// Paths from the spec are resolved inside it and may never leave it.
    pub work_dir: PathBuf,
    /// Shared by the job's tasks at this site; where results go.
    pub output_dir: PathBuf,
    /// `SUANWANG_JOB`, `SUANWANG_TASK_INDEX`, `SUANWANG_ATTEMPT`,
    /// `SUANWANG_OUTPUT_DIR`, ... on top of `run.env`.
    pub env: BTreeMap<String, String>,
    /// Longest the attempt may run before it is stopped.
    pub wall_time_max: Duration,
    /// Most memory the attempt may use, in bytes, a whole number of MiB
    /// ([`memory_bytes_max`]); `None`: the job asked for no limit. The
    /// `process` executor writes it to the attempt's `memory.max`, the
    /// `slurm` executor passes it as `--mem`.
    pub memory_bytes_max: Option<u64>,
}

const MIB: u64 = 1 << 20;
/// The largest memory limit passed on, 16 TiB in MiB: more than any node
/// has, far from overflow in bytes.
const MEMORY_MIB_MAX: u64 = 16 << 20;

/// A task's memory limit in bytes from the job's `resources.memory_gib`:
/// rounded up to a whole MiB (Slurm's unit, and page-aligned for
/// `memory.max`), at most 16 TiB; `None` for 0 (no limit asked) or a value
/// that is not a positive number.
pub fn memory_bytes_max(memory_gib: f64) -> Option<u64> {
    if memory_gib.is_nan() || memory_gib <= 0.0 {
        return None;
    }
    // The product by a power of two is exact, so whole MiB stay whole;
    // `as` saturates, and so large a limit is clamped anyway.
    let mib = (memory_gib * 1024.0).ceil() as u64;
    Some(mib.clamp(1, MEMORY_MIB_MAX) * MIB)
}

/// What an executor returns from `start` and the agent persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Queued by the executor (e.g. pending in Slurm), not yet running.
    Queued,
    Running,
    /// Finished: exit code 0 is success.
    Exited {
        code: i32,
        /// Wall time the attempt ran, as the executor measured it.
        wall_ms: u64,
        /// The last bytes of its output (bounded).
        output_tail: String,
    },
    /// Could not run or was killed (signal, wall-time limit, node failure).
    Failed {
        reason: String,
        wall_ms: u64,
        output_tail: String,
    },
    /// Ended, but how cannot be read (e.g. Slurm's record of it is
    /// unparseable): failed with `reason`, never taken for a success. The
    /// executor has no wall time either; the agent meters its own measure
    /// since the start.
    Unreadable {
        reason: String,
        output_tail: String,
    },
    /// The executor knows nothing of this handle (e.g. lost across a reboot).
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The task cannot run here as specified (e.g. no Slurm script): fail it.
    #[error("invalid task: {0}")]
    Invalid(String),
    /// The executor is unavailable right now (e.g. slurmctld down): retry.
    #[error("executor unavailable: {0}")]
    Unavailable(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

#[async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug + 'static {
    /// `process`, `slurm`, ...
    fn name(&self) -> &'static str;

    /// Starts the attempt and returns at once with its handle.
    async fn start(&self, task: &TaskSpec) -> Result<Handle, ExecutorError>;

    /// Where the attempt is now. Cheap: called every reconcile tick.
    async fn poll(&self, handle: &Handle) -> Result<TaskStatus, ExecutorError>;

    /// Whether `Running` means the attempt has run since it was started,
    /// so the agent may meter it as it runs (interim usage records). Not for
    /// executors with a queue of their own (Slurm): their final wall time is
    /// the only measure.
    fn meters_while_running(&self) -> bool {
        false
    }

    /// Stops the attempt: a polite signal, then a forced stop after `grace`.
    /// Stopping a finished or unknown attempt is not an error.
    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<(), ExecutorError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_in_whole_mib() {
        let check = |gib: f64, expect: Option<u64>| {
            assert_eq!(memory_bytes_max(gib), expect, "{gib}");
        };
        check(0.0, None);
        check(-1.0, None);
        check(f64::NAN, None);
        check(1.0, Some(1 << 30));
        check(0.5, Some(512 << 20));
        check(64.0, Some(64 << 30));
        // Up to the next MiB: never below what was asked.
        check(1.0 / 1024.0, Some(1 << 20));
        check(0.1, Some(103 << 20));
        check(1e-12, Some(1 << 20));
        check(1e6, Some(16 << 40));
        check(f64::INFINITY, Some(16 << 40));
    }
}
