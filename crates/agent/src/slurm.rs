//! The `slurm` executor: each task attempt becomes one Slurm batch job.
//!
//! - **start** writes the batch script into the attempt's work directory
//!   (`suanwang.slurm`: the job's `run.slurm_script`, or a script that
//!   `exec`s `run.command` with `run.args`, shell-quoted) and submits it with
//!   `sbatch --parsable`: job name `suanwang-JOB-TASK-ATTEMPT`, `--chdir` the
//!   work directory, `--output` `slurm-output.txt` in it (stdout and stderr),
//!   `--time` from `wall_time_max`, `--no-requeue` (the control plane owns
//!   retries and fences attempts; a Slurm requeue would run the same attempt
//!   twice), resources by the pool's kind ([`PoolKind`]), and, when the job
//!   asked for memory, `--mem` of it in MiB. `--mem` is per node: a task of
//!   an `hpc` pool, `units` nodes, asks each node for the task's memory. As
//!   an option it beats a `#SBATCH --mem` in the job's own script. Whether
//!   Slurm enforces it is the cluster's choice (`TaskPlugin=task/cgroup`
//!   with `ConstrainRAMSpace=yes`; `SelectTypeParameters=CR_*_Memory` to
//!   schedule by it); more than every node's `RealMemory` makes sbatch
//!   refuse the job, which fails the attempt. The environment
//!   (`TaskSpec::env` plus `run.env`, plus the agent's `PATH`, `HOME` and
//!   `LANG`) is passed with `--export=ALL` from an otherwise cleared sbatch
//!   environment, so values may hold commas, quotes or newlines, and nothing
//!   else of the agent's environment (its token) reaches the job. (Naming
//!   the variables, `--export=NAME,...`, makes slurmd load the user's login
//!   environment for every job: 8x slower launches, measured.)
//!   The handle is `JOBID;OUTPUT_PATH`.
//! - **poll** asks `squeue -h -j ID -o %T` (pending, running, completing).
//!   Once the job has left the queue, its record comes from the first source
//!   that still has it: `scontrol show job -o ID` (slurmctld keeps finished
//!   jobs for `MinJobAge`), `sacct` (only when slurmctld stores accounting in
//!   slurmdbd; without it sacct answers "accounting storage is disabled"),
//!   and the `jobcomp/filetxt` completion log (its last 8 MiB). No source:
//!   [`TaskStatus::Unknown`].
//! - **stop** sends SIGTERM to the batch shell and its children
//!   (`scancel --full --signal=TERM`), waits up to the grace period for the
//!   job to end, then sends SIGKILL and cancels the job (`scancel`). A
//!   pending job is cancelled at once. Stopping an ended or unknown job is a
//!   no-op.
//! - **usage** ([`SlurmExecutor::usage`]) comes from Slurm's own accounting
//!   of the job: elapsed seconds (`RunTime`, `ElapsedRaw` or `EndTime -
//!   StartTime`: whole seconds, Slurm's resolution), allocated CPUs
//!   (`NumCPUs`, `AllocCPUS`, `ProcCnt`), nodes, and GPUs (`gres/gpu` in the
//!   TRES, or the per-node GRES request times the nodes; absent from the
//!   completion log unless slurmdbd tracks `gres/gpu`). `wall_ms` in
//!   [`TaskStatus::Exited`] is the same elapsed time in milliseconds.
//! - **No silent defaults.** A record whose exit code, elapsed time, state
//!   or counts cannot be read (or are missing) is never taken for 0: the
//!   attempt fails with a reason quoting the text (`ExitCode "x:0" is not
//!   CODE:SIGNAL`), metered by Slurm's elapsed time when that could be
//!   read, else by the agent's own clock ([`TaskStatus::Unreadable`]).
//!   Times are read with `jiff`. The parser is tested on real output of
//!   Slurm 22.05 (`tests/data/slurm/`) and on garbage.
//!
//! Array jobs are not used. The agent starts attempts one by one as
//! assignments arrive, and each attempt has its own work directory,
//! environment, attempt number, wall-time limit and stop; an array shares one
//! script, environment and limit among its elements, and would have to be
//! formed by holding assignments back. Submission is not what limits Slurm:
//! one `sbatch` per task submits ~200 jobs per second on a small node, while
//! slurmctld/slurmd start and finish `true` jobs at a few tens per second
//! whether they come as an array or not (see the `slurm_bench` test).
//!
//! Every Slurm command runs with a timeout and a bound on the output it
//! reads; a slurmctld that does not answer makes the call fail with
//! [`ExecutorError::Unavailable`], so the reconciler retries later.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::executor::{Executor, ExecutorError, Handle, TaskSpec, TaskStatus};

/// Bytes of a task's output returned as its tail.
pub const OUTPUT_TAIL_BYTES: u64 = 4096;
/// The batch script's name in the work directory.
pub const SCRIPT_FILE: &str = "suanwang.slurm";
/// The job's output file (stdout and stderr) in the work directory.
pub const OUTPUT_FILE: &str = "slurm-output.txt";
/// Most bytes read from one Slurm command's stdout or stderr.
const COMMAND_OUTPUT_MAX: u64 = 1 << 20;
/// Most bytes of the completion log searched for a job, from its end.
const JOBCOMP_SCAN_MAX: u64 = 8 << 20;
/// Longest wall-time limit passed to Slurm.
const TIME_LIMIT_MAX_MINUTES: u64 = 365 * 24 * 60;
/// How often `stop` looks whether the job has ended during the grace period.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Variables of the agent's own environment that jobs also get.
const INHERITED_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

/// What one unit of a pool is, and so how a task's units become a Slurm
/// resource request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PoolKind {
    /// A unit is a core: `--ntasks=1 --cpus-per-task=UNITS`.
    #[default]
    Cpu,
    /// A unit is an accelerator: `--ntasks=1 --gres=gpu:UNITS`.
    Gpu,
    /// A unit is a whole node: `--nodes=UNITS --exclusive`; the script's own
    /// `#SBATCH` lines say how tasks are laid out on them.
    Hpc,
}

/// The kind a site file declares for a pool.
impl From<suanwang_api::ResourceKind> for PoolKind {
    fn from(kind: suanwang_api::ResourceKind) -> PoolKind {
        match kind {
            suanwang_api::ResourceKind::Cpu => PoolKind::Cpu,
            suanwang_api::ResourceKind::Gpu => PoolKind::Gpu,
            suanwang_api::ResourceKind::Hpc => PoolKind::Hpc,
        }
    }
}

impl std::str::FromStr for PoolKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            "hpc" => Ok(Self::Hpc),
            other => Err(format!("unknown pool kind `{other}` (cpu, gpu or hpc)")),
        }
    }
}

/// How the executor talks to Slurm.
#[derive(Clone, Debug)]
pub struct SlurmConfig {
    /// Kind of each pool by name; pools not listed are [`PoolKind::Cpu`].
    pub pools: BTreeMap<String, PoolKind>,
    /// `--partition`; none: the cluster's default partition.
    pub partition: Option<String>,
    /// `--account`; none: the submitting user's default account.
    pub account: Option<String>,
    /// More `sbatch` options, placed before the script (e.g. `--qos=...`).
    pub extra_sbatch_args: Vec<String>,
    /// Where `sbatch`, `squeue`, `scontrol`, `sacct` and `scancel` are;
    /// none: found on `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// Longest one Slurm command may take before the call is `Unavailable`.
    pub command_timeout: Duration,
    /// The `jobcomp/filetxt` log; none: asked from `scontrol show config`.
    pub jobcomp_log: Option<PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            pools: BTreeMap::new(),
            partition: None,
            account: None,
            extra_sbatch_args: Vec::new(),
            bin_dir: None,
            command_timeout: Duration::from_secs(30),
            jobcomp_log: None,
        }
    }
}

/// Slurm's accounting of one job: what usage records are made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmUsage {
    pub job_id: String,
    /// Slurm's job state, e.g. `COMPLETED`, `RUNNING`, `CANCELLED`.
    pub state: String,
    /// Seconds the job ran so far (whole seconds: Slurm's resolution).
    pub elapsed_s: u64,
    pub alloc_cpus: u64,
    pub alloc_nodes: u64,
    /// None where the source does not record GPUs (the completion log
    /// without slurmdbd tracking `gres/gpu`).
    pub alloc_gpus: Option<u64>,
    /// `scontrol`, `sacct` or `jobcomp`.
    pub source: &'static str,
}

/// Runs task attempts as Slurm batch jobs; see the module documentation.
#[derive(Debug)]
pub struct SlurmExecutor {
    config: SlurmConfig,
    accounting: OnceCell<Accounting>,
}

/// Where finished jobs' records are, learnt once from `scontrol show config`.
#[derive(Clone, Debug)]
struct Accounting {
    sacct: bool,
    jobcomp_log: Option<PathBuf>,
}

impl SlurmExecutor {
    pub fn new(config: SlurmConfig) -> Self {
        Self {
            config,
            accounting: OnceCell::new(),
        }
    }

    /// Slurm's accounting of the job behind `handle`; none when no source
    /// knows it any more.
    pub async fn usage(&self, handle: &Handle) -> Result<Option<SlurmUsage>, ExecutorError> {
        let (job_id, _) = parse_handle(handle)?;
        let Some(record) = self.record(job_id).await? else {
            return Ok(None);
        };
        let record = record.map_err(|garbled| {
            ExecutorError::Invalid(format!("Slurm job {job_id}: {}", garbled.reason))
        })?;
        Ok(Some(SlurmUsage {
            job_id: job_id.to_owned(),
            state: record.state,
            elapsed_s: record.elapsed_s,
            alloc_cpus: record.cpus,
            alloc_nodes: record.nodes,
            alloc_gpus: record.gpus,
            source: record.source,
        }))
    }

    /// The `sbatch` arguments for `task`, without the script path.
    pub fn sbatch_args(
        &self,
        task: &TaskSpec,
        work_dir: &Path,
    ) -> Result<Vec<String>, ExecutorError> {
        if task.units == 0 {
            return Err(ExecutorError::Invalid(
                "a task needs at least one unit".into(),
            ));
        }
        let kind = self
            .config
            .pools
            .get(&task.pool)
            .copied()
            .unwrap_or_default();
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", job_name(task)),
            format!("--chdir={}", work_dir.display()),
            format!("--output={}", work_dir.join(OUTPUT_FILE).display()),
            "--export=ALL".to_owned(),
            format!("--time={}", time_limit_minutes(task.wall_time_max)),
            "--no-requeue".to_owned(),
        ];
        match kind {
            PoolKind::Cpu => {
                args.push("--ntasks=1".into());
                args.push(format!("--cpus-per-task={}", task.units));
            }
            PoolKind::Gpu => {
                args.push("--ntasks=1".into());
                args.push(format!("--gres=gpu:{}", task.units));
            }
            PoolKind::Hpc => {
                args.push(format!("--nodes={}", task.units));
                args.push("--exclusive".into());
            }
        }
        // Never `--mem=0`, which asks for all of a node's memory.
        if let Some(bytes) = task.memory_bytes_max.filter(|&bytes| bytes > 0) {
            // A whole number of MiB (`executor::memory_bytes_max`); round up
            // for any other caller.
            args.push(format!("--mem={}M", bytes.div_ceil(1 << 20)));
        }
        if let Some(partition) = &self.config.partition {
            args.push(format!("--partition={partition}"));
        }
        if let Some(account) = &self.config.account {
            args.push(format!("--account={account}"));
        }
        args.extend(self.config.extra_sbatch_args.iter().cloned());
        Ok(args)
    }

    fn program(&self, name: &str) -> PathBuf {
        match &self.config.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// Runs one Slurm command with a timeout, reading at most
    /// `COMMAND_OUTPUT_MAX` bytes of each of its outputs. With `env`, the
    /// command gets exactly that environment instead of the agent's.
    async fn run(
        &self,
        name: &str,
        args: &[String],
        env: Option<&BTreeMap<String, String>>,
    ) -> Result<CommandOutput, ExecutorError> {
        let mut command = Command::new(self.program(name));
        if let Some(env) = env {
            command.env_clear().envs(env);
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                ExecutorError::Unavailable(format!("{name} not found: is Slurm installed?"))
            }
            _ => ExecutorError::Io(e),
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let work = async move {
            let (stdout, stderr) = tokio::join!(read_bounded(stdout), read_bounded(stderr));
            let status = child.wait().await?;
            Ok::<_, std::io::Error>(CommandOutput {
                success: status.success(),
                stdout: stdout?,
                stderr: stderr?,
            })
        };
        match tokio::time::timeout(self.config.command_timeout, work).await {
            Ok(output) => Ok(output?),
            Err(_) => Err(ExecutorError::Unavailable(format!(
                "{name} did not answer within {:?}",
                self.config.command_timeout
            ))),
        }
    }

    /// The job's state in the queue; none when it has left it (or was never
    /// there).
    async fn queue_state(&self, job_id: &str) -> Result<Option<String>, ExecutorError> {
        let args = [
            "-h".to_owned(),
            "-j".to_owned(),
            job_id.to_owned(),
            "-o".to_owned(),
            "%T".to_owned(),
        ];
        let output = self.run("squeue", &args, None).await?;
        if !output.success {
            if is_invalid_job(&output.stderr) {
                return Ok(None);
            }
            return Err(unavailable("squeue", &output));
        }
        Ok(output
            .stdout
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned))
    }

    async fn accounting(&self) -> Result<&Accounting, ExecutorError> {
        self.accounting
            .get_or_try_init(|| async {
                let output = self
                    .run("scontrol", &["show".to_owned(), "config".to_owned()], None)
                    .await?;
                if !output.success {
                    return Err(unavailable("scontrol show config", &output));
                }
                let config = parse_config(&output.stdout);
                let storage = config
                    .get("AccountingStorageType")
                    .map(String::as_str)
                    .unwrap_or("");
                let jobcomp = config.get("JobCompType").map(String::as_str).unwrap_or("");
                let jobcomp_log = match &self.config.jobcomp_log {
                    Some(path) => Some(path.clone()),
                    None if jobcomp == "jobcomp/filetxt" => {
                        config.get("JobCompLoc").map(PathBuf::from)
                    }
                    None => None,
                };
                Ok(Accounting {
                    sacct: storage == "accounting_storage/slurmdbd",
                    jobcomp_log,
                })
            })
            .await
    }

    /// The job's record from the first source that has it; `Err(Garbled)`
    /// inside when that source's record cannot be read.
    async fn record(
        &self,
        job_id: &str,
    ) -> Result<Option<Result<JobRecord, Garbled>>, ExecutorError> {
        let args = [
            "show".to_owned(),
            "job".to_owned(),
            "-o".to_owned(),
            job_id.to_owned(),
        ];
        let output = self.run("scontrol", &args, None).await?;
        if output.success {
            if let Some(line) = output.stdout.lines().find(|l| l.starts_with("JobId=")) {
                return Ok(Some(JobRecord::from_fields(
                    &parse_fields(line),
                    "scontrol",
                )));
            }
        } else if !is_invalid_job(&output.stderr) {
            return Err(unavailable("scontrol show job", &output));
        }
        let accounting = self.accounting().await?.clone();
        if accounting.sacct {
            let args = [
                "-n",
                "-P",
                "-X",
                "-j",
                job_id,
                "-o",
                "State,ExitCode,ElapsedRaw,AllocCPUS,NNodes,AllocTRES",
            ]
            .map(str::to_owned);
            let output = self.run("sacct", &args, None).await?;
            if !output.success {
                return Err(unavailable("sacct", &output));
            }
            if let Some(record) = output.stdout.lines().find_map(JobRecord::from_sacct) {
                return Ok(Some(record));
            }
        }
        if let Some(log) = &accounting.jobcomp_log {
            if let Some(line) = find_in_jobcomp(log, job_id).await? {
                return Ok(Some(JobRecord::from_fields(
                    &parse_fields(&line),
                    "jobcomp",
                )));
            }
        }
        Ok(None)
    }

    async fn scancel(&self, args: &[&str]) -> Result<(), ExecutorError> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let output = self.run("scancel", &args, None).await?;
        // An ended or unknown job is not an error: the caller looks again.
        if !output.success && is_unreachable(&output.stderr) {
            return Err(unavailable("scancel", &output));
        }
        Ok(())
    }
}

#[async_trait]
impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    async fn start(&self, task: &TaskSpec) -> Result<Handle, ExecutorError> {
        let work_dir = if task.work_dir.is_absolute() {
            task.work_dir.clone()
        } else {
            std::env::current_dir()?.join(&task.work_dir)
        };
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for name in INHERITED_ENV {
            if let Ok(value) = std::env::var(name) {
                env.insert(name.to_owned(), value);
            }
        }
        for (name, value) in task.env.iter().chain(task.run.env.iter()) {
            check_env_name(name)?;
            env.insert(name.clone(), value.clone());
        }
        // sbatch itself may need to know where the configuration is.
        if let Ok(conf) = std::env::var("SLURM_CONF") {
            env.insert("SLURM_CONF".to_owned(), conf);
        }
        let mut args = self.sbatch_args(task, &work_dir)?;
        let script = batch_script(task)?;
        let script_path = work_dir.join(SCRIPT_FILE);
        tokio::fs::write(&script_path, script).await?;
        args.push(script_path.display().to_string());
        let output = self.run("sbatch", &args, Some(&env)).await?;
        if !output.success {
            if is_unreachable(&output.stderr) {
                return Err(unavailable("sbatch", &output));
            }
            return Err(ExecutorError::Invalid(format!(
                "sbatch refused the job: {}",
                output.stderr.trim()
            )));
        }
        // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
        let job_id = output
            .stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .to_owned();
        if job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ExecutorError::Unavailable(format!(
                "sbatch printed no job id: {:?}",
                output.stdout.trim()
            )));
        }
        Ok(Handle(format!(
            "{job_id};{}",
            work_dir.join(OUTPUT_FILE).display()
        )))
    }

    async fn poll(&self, handle: &Handle) -> Result<TaskStatus, ExecutorError> {
        let (job_id, output_path) = parse_handle(handle)?;
        if let Some(state) = self.queue_state(job_id).await? {
            if let Some(status) = active_status(&state) {
                return Ok(status);
            }
        }
        let Some(record) = self.record(job_id).await? else {
            return Ok(TaskStatus::Unknown);
        };
        let record = match record {
            Ok(record) => record,
            Err(garbled) => {
                // How the job ended cannot be read: the attempt fails, and
                // says what Slurm wrote, instead of guessing success.
                let output_tail = read_tail(Path::new(output_path), OUTPUT_TAIL_BYTES).await;
                return Ok(garbled.status(job_id, output_tail));
            }
        };
        if let Some(status) = active_status(&record.state) {
            return Ok(status);
        }
        let output_tail = read_tail(Path::new(output_path), OUTPUT_TAIL_BYTES).await;
        Ok(record.status(output_tail))
    }

    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<(), ExecutorError> {
        let (job_id, _) = parse_handle(handle)?;
        let Some(state) = self.queue_state(job_id).await? else {
            return Ok(());
        };
        match active_status(&state) {
            None => return Ok(()),
            Some(TaskStatus::Queued) => return self.scancel(&[job_id]).await,
            Some(_) => {}
        }
        self.scancel(&["--full", "--signal=TERM", job_id]).await?;
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match self.queue_state(job_id).await? {
                Some(state) if active_status(&state).is_some() => {}
                _ => return Ok(()),
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(
                STOP_POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            )
            .await;
        }
        self.scancel(&["--full", "--signal=KILL", job_id]).await?;
        self.scancel(&[job_id]).await
    }
}

#[derive(Debug)]
struct CommandOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(
    reader: Option<R>,
) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    if let Some(reader) = reader {
        reader
            .take(COMMAND_OUTPUT_MAX)
            .read_to_end(&mut bytes)
            .await?;
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn unavailable(what: &str, output: &CommandOutput) -> ExecutorError {
    ExecutorError::Unavailable(format!("{what} failed: {}", output.stderr.trim()))
}

fn is_invalid_job(stderr: &str) -> bool {
    stderr.contains("Invalid job id")
}

/// Whether a Slurm command failed because slurmctld could not be reached
/// (worth retrying) rather than because of the request.
fn is_unreachable(stderr: &str) -> bool {
    [
        "Unable to contact slurm controller",
        "Socket timed out",
        "Connection refused",
        "Zero Bytes were transmitted",
        "temporarily unavailable",
        "Munge",
        "munge",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

/// Splits a handle `JOBID;OUTPUT_PATH`.
fn parse_handle(handle: &Handle) -> Result<(&str, &str), ExecutorError> {
    let (job_id, output) = handle.0.split_once(';').unwrap_or((handle.0.as_str(), ""));
    let valid = !job_id.is_empty() && job_id.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(ExecutorError::Invalid(format!(
            "not a Slurm handle: {:?}",
            handle.0
        )));
    }
    Ok((job_id, output))
}

/// `suanwang-JOB-TASK-ATTEMPT`, with anything but `[A-Za-z0-9._-]` in the
/// job id replaced by `_`.
fn job_name(task: &TaskSpec) -> String {
    let job: String = task
        .job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("suanwang-{job}-{}-{}", task.task, task.attempt)
}

/// Whole minutes, rounded up (Slurm's resolution), at least one.
fn time_limit_minutes(wall_time_max: Duration) -> u64 {
    wall_time_max
        .as_secs()
        .div_ceil(60)
        .clamp(1, TIME_LIMIT_MAX_MINUTES)
}

/// Names Slurm passes through `--export`; `SLURM_*` and `SBATCH_*` would
/// instead steer sbatch itself.
fn check_env_name(name: &str) -> Result<(), ExecutorError> {
    let mut bytes = name.bytes();
    let valid = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(ExecutorError::Invalid(format!(
            "invalid environment variable name {name:?}"
        )));
    }
    if ["SLURM_", "SBATCH_", "SALLOC_", "SRUN_"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return Err(ExecutorError::Invalid(format!(
            "environment variable {name} is reserved for Slurm"
        )));
    }
    Ok(())
}

/// The batch script: the job's own Slurm script (given a `#!/bin/bash`
/// line if it has none, as sbatch requires), or one that execs the command.
pub fn batch_script(task: &TaskSpec) -> Result<String, ExecutorError> {
    if let Some(script) = &task.run.slurm_script {
        if script.starts_with("#!") {
            return Ok(script.clone());
        }
        return Ok(format!("#!/bin/bash\n{script}"));
    }
    if task.run.command.is_empty() {
        return Err(ExecutorError::Invalid(
            "the task has neither a command nor a Slurm script".into(),
        ));
    }
    let mut script = String::from("#!/bin/sh\n# Written by suanwang's Slurm executor.\nexec");
    for word in std::iter::once(&task.run.command).chain(task.run.args.iter()) {
        if word.contains('\0') {
            return Err(ExecutorError::Invalid(
                "a command or argument holds a NUL byte".into(),
            ));
        }
        script.push(' ');
        script.push_str(&shell_quote(word));
    }
    script.push('\n');
    Ok(script)
}

/// Quotes a word for POSIX sh: inside single quotes, each `'` as `'\''`.
pub fn shell_quote(word: &str) -> String {
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('\'');
    for c in word.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// The status of a job still in the queue; none for an ended one.
fn active_status(state: &str) -> Option<TaskStatus> {
    match state.split_whitespace().next().unwrap_or("") {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" => Some(TaskStatus::Queued),
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT"
        | "RESIZING" => Some(TaskStatus::Running),
        _ => None,
    }
}

/// One job's record from slurmctld, sacct or the completion log.
#[derive(Clone, Debug, PartialEq, Eq)]
struct JobRecord {
    state: String,
    exit_code: i32,
    signal: i32,
    elapsed_s: u64,
    cpus: u64,
    nodes: u64,
    gpus: Option<u64>,
    reason: Option<String>,
    source: &'static str,
}

/// A record whose fields cannot be read: which field, quoting the text.
/// Never read as a default (an exit code of 0 would be a success).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Garbled {
    /// E.g. `scontrol: ExitCode "x:0" is not CODE:SIGNAL`.
    reason: String,
    /// The elapsed time, when that at least could be read.
    elapsed_s: Option<u64>,
}

impl Garbled {
    /// The attempt fails with the reason. Its wall time is Slurm's when
    /// that could be read, else the agent's own measure since the start
    /// ([`TaskStatus::Unreadable`]).
    fn status(self, job_id: &str, output_tail: String) -> TaskStatus {
        let reason = format!("unreadable Slurm record of job {job_id}: {}", self.reason);
        match self.elapsed_s {
            Some(elapsed_s) => TaskStatus::Failed {
                reason,
                wall_ms: elapsed_s.saturating_mul(1000),
                output_tail,
            },
            None => TaskStatus::Unreadable {
                reason,
                output_tail,
            },
        }
    }
}

/// Reads a count such as `NumCPUs=4`; absent gives `absent`, text that is
/// not a count is an error quoting it.
fn count_field(value: Option<&str>, name: &str, absent: u64) -> Result<u64, String> {
    match value {
        None => Ok(absent),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name} {text:?} is not a count")),
    }
}

impl JobRecord {
    /// From `key=value` fields of `scontrol show job -o` or the jobcomp log.
    /// A field that is there but cannot be read, or no state, exit code or
    /// elapsed time at all: `Garbled`, quoting the text.
    fn from_fields(
        fields: &BTreeMap<String, String>,
        source: &'static str,
    ) -> Result<Self, Garbled> {
        let get = |key: &str| fields.get(key).map(String::as_str);
        let garbled = |reason: String, elapsed_s: Option<u64>| Garbled {
            reason: format!("{source}: {reason}"),
            elapsed_s,
        };
        let Some(state) = get("JobState").and_then(|s| s.split_whitespace().next()) else {
            return Err(garbled("no JobState".to_owned(), None));
        };
        let elapsed_s = match get("RunTime") {
            Some(text) => parse_duration_s(text)
                .ok_or_else(|| format!("RunTime {text:?} is not [D-]HH:MM:SS")),
            None => match (get("StartTime"), get("EndTime")) {
                (Some(start), Some(end)) => elapsed_between(start, end),
                _ => Err("no RunTime, nor StartTime and EndTime".to_owned()),
            },
        };
        let elapsed_s = match elapsed_s {
            Ok(s) => s,
            Err(reason) => return Err(garbled(reason, None)),
        };
        let read = || -> Result<Self, String> {
            let (exit_code, signal) = match get("ExitCode") {
                Some(text) => parse_exit_code(text)?,
                None => return Err("no ExitCode".to_owned()),
            };
            let nodes_text = get("NumNodes").or(get("NodeCnt"));
            let nodes = count_field(nodes_text, "NumNodes", 1)?;
            let cpus = count_field(get("NumCPUs").or(get("ProcCnt")), "NumCPUs", 0)?;
            let tres = get("AllocTRES")
                .or(get("TRES"))
                .or(get("Tres"))
                .unwrap_or("");
            let gpus = tres_gpus(tres)?
                .or_else(|| get("TresPerNode").and_then(gres_gpus).map(|g| g * nodes))
                .or_else(|| get("TresPerJob").and_then(gres_gpus))
                .or(if source == "scontrol" { Some(0) } else { None });
            let reason = get("Reason")
                .filter(|r| !r.is_empty() && *r != "None")
                .map(str::to_owned);
            Ok(Self {
                state: state.to_owned(),
                exit_code,
                signal,
                elapsed_s,
                cpus,
                nodes,
                gpus,
                reason,
                source,
            })
        };
        read().map_err(|reason| garbled(reason, Some(elapsed_s)))
    }

    /// From one line of `sacct -n -P -o State,ExitCode,ElapsedRaw,AllocCPUS,NNodes,AllocTRES`;
    /// none for a line that is not a record (not six fields).
    fn from_sacct(line: &str) -> Option<Result<Self, Garbled>> {
        let fields: Vec<&str> = line.split('|').collect();
        let [state, exit_code, elapsed, cpus, nodes, tres] = fields.as_slice() else {
            return None;
        };
        let garbled = |reason: String, elapsed_s: Option<u64>| Garbled {
            reason: format!("sacct: {reason} in {line:?}"),
            elapsed_s,
        };
        let elapsed_s = match elapsed.trim().parse::<u64>() {
            Ok(s) => s,
            Err(_) => {
                return Some(Err(garbled(
                    format!("ElapsedRaw {elapsed:?} is not a number of seconds"),
                    None,
                )))
            }
        };
        let read = || -> Result<Self, String> {
            let state = state
                .split_whitespace()
                .next()
                .ok_or_else(|| format!("State {state:?} is empty"))?;
            let (exit_code, signal) = parse_exit_code(exit_code)?;
            Ok(Self {
                state: state.to_owned(),
                exit_code,
                signal,
                elapsed_s,
                cpus: count_field(Some(cpus), "AllocCPUS", 0)?,
                nodes: count_field(Some(nodes), "NNodes", 1)?,
                gpus: tres_gpus(tres)?,
                reason: None,
                source: "sacct",
            })
        };
        Some(read().map_err(|reason| garbled(reason, Some(elapsed_s))))
    }

    /// The ended job as a task status: `Exited` when the script itself
    /// ended (with any code), `Failed` when Slurm or a signal ended it.
    fn status(&self, output_tail: String) -> TaskStatus {
        let wall_ms = self.elapsed_s.saturating_mul(1000);
        match self.state.as_str() {
            "COMPLETED" => TaskStatus::Exited {
                code: self.exit_code,
                wall_ms,
                output_tail,
            },
            "FAILED" if self.signal == 0 => TaskStatus::Exited {
                code: self.exit_code,
                wall_ms,
                output_tail,
            },
            state => {
                let mut reason = state.to_owned();
                match state {
                    "TIMEOUT" => reason.push_str(": wall-time limit reached"),
                    "CANCELLED" => reason.push_str(": cancelled (scancel)"),
                    "OUT_OF_MEMORY" => reason.push_str(": out of memory"),
                    "NODE_FAIL" => reason.push_str(": node failure"),
                    _ => {}
                }
                if self.signal != 0 {
                    let _ = write!(reason, ", signal {}", self.signal);
                }
                if let Some(detail) = self
                    .reason
                    .as_deref()
                    .filter(|_| self.signal == 0 && state != "CANCELLED")
                {
                    let _ = write!(reason, " ({detail})");
                }
                TaskStatus::Failed {
                    reason,
                    wall_ms,
                    output_tail,
                }
            }
        }
    }
}

/// Splits `scontrol show job -o` output (or a jobcomp line) into its
/// `Key=Value` fields. A word that does not start a new field belongs to the
/// value before it (values may hold spaces).
fn parse_fields(line: &str) -> BTreeMap<String, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for word in line.split_whitespace() {
        let key = word.split_once('=').map(|(k, _)| k).filter(|k| {
            let mut chars = k.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '/'))
        });
        match key {
            Some(key) => {
                let value = &word[key.len() + 1..];
                fields.insert(key.to_owned(), value.to_owned());
                last = Some(key.to_owned());
            }
            None => {
                if let Some(value) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                    value.push(' ');
                    value.push_str(word);
                }
            }
        }
    }
    fields
}

/// `Key = Value` lines of `scontrol show config`.
fn parse_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// `3:0` → (3, 0): the exit code and the signal that ended the job. Both
/// parts are required: anything else is an error quoting the text.
fn parse_exit_code(text: &str) -> Result<(i32, i32), String> {
    let parsed = text
        .split_once(':')
        .and_then(|(code, signal)| Some((code.trim().parse().ok()?, signal.trim().parse().ok()?)));
    parsed.ok_or_else(|| format!("ExitCode {text:?} is not CODE:SIGNAL"))
}

/// `[D-]HH:MM:SS`, `MM:SS` → seconds.
fn parse_duration_s(text: &str) -> Option<u64> {
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let mut seconds = 0u64;
    for part in rest.split(':') {
        seconds = seconds
            .checked_mul(60)?
            .checked_add(part.parse::<u64>().ok()?)?;
    }
    days.checked_mul(86_400)?.checked_add(seconds)
}

/// Whole seconds from `StartTime` to `EndTime`, both `2026-11-27T20:55:00`
/// in slurmctld's local time (read as civil times: a daylight-saving change
/// in between is not seen). An end before the start, or a time that cannot
/// be read, is an error quoting them.
fn elapsed_between(start: &str, end: &str) -> Result<u64, String> {
    let time = |name: &str, text: &str| {
        text.parse::<jiff::civil::DateTime>()
            .map_err(|_| format!("{name} {text:?} is not a date and time"))
    };
    let seconds = time("EndTime", end)?
        .duration_since(time("StartTime", start)?)
        .as_secs();
    u64::try_from(seconds).map_err(|_| format!("EndTime {end:?} is before StartTime {start:?}"))
}

/// GPUs in a TRES list such as `cpu=2,node=1,gres/gpu=2` (or
/// `gres/gpu:a100=2`, counted under `gres/gpu` too).
/// Absent: none; a count that cannot be read: an error quoting it.
fn tres_gpus(tres: &str) -> Result<Option<u64>, String> {
    match tres
        .split(',')
        .filter_map(|item| item.split_once('='))
        .find(|(name, _)| *name == "gres/gpu")
    {
        None => Ok(None),
        Some((_, count)) => count
            .parse()
            .map(Some)
            .map_err(|_| format!("gres/gpu {count:?} is not a count in TRES {tres:?}")),
    }
}

/// GPUs in a GRES request such as `gres:gpu:2`, `gres/gpu:a100:2` or
/// `gres:gpu=2`.
fn gres_gpus(gres: &str) -> Option<u64> {
    gres.split(',').find_map(|item| {
        let item = item
            .strip_prefix("gres:")
            .or_else(|| item.strip_prefix("gres/"))
            .unwrap_or(item);
        let item = item.strip_prefix("gpu")?;
        if item.is_empty() {
            return Some(1);
        }
        let count = item.rsplit([':', '=']).next()?;
        count.parse().ok()
    })
}

/// The last line for `job_id` in the completion log, searched in its last
/// `JOBCOMP_SCAN_MAX` bytes.
async fn find_in_jobcomp(log: &Path, job_id: &str) -> Result<Option<String>, ExecutorError> {
    let text = match read_tail_bytes(log, JOBCOMP_SCAN_MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let prefix = format!("JobId={job_id} ");
    Ok(text
        .lines()
        .rev()
        .find(|line| line.starts_with(&prefix))
        .map(str::to_owned))
}

async fn read_tail_bytes(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start)).await?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// The last `max` bytes of the job's output, starting at a character
/// boundary; empty when there is no output file.
async fn read_tail(path: &Path, max: u64) -> String {
    match read_tail_bytes(path, max).await {
        Ok(bytes) => {
            let start = bytes
                .iter()
                .take(4)
                .take_while(|b| (0x80..0xC0).contains(*b))
                .count();
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_becomes_mem() {
        let slurm = SlurmExecutor::new(SlurmConfig::default());
        let mut task = TaskSpec {
            job: "j".into(),
            task: 0,
            attempt: 1,
            pool: "cpu".into(),
            units: 2,
            hours: 0.01,
            run: suanwang_api::RunSpec {
                command: "true".into(),
                args: Vec::new(),
                env: BTreeMap::new(),
                slurm_script: None,
            },
            work_dir: "/w".into(),
            output_dir: "/o".into(),
            env: BTreeMap::new(),
            wall_time_max: Duration::from_secs(600),
            memory_bytes_max: None,
        };
        let mem = |task: &TaskSpec| -> Vec<String> {
            let args = slurm.sbatch_args(task, Path::new("/w")).unwrap();
            args.into_iter()
                .filter(|arg| arg.starts_with("--mem"))
                .collect()
        };
        assert!(mem(&task).is_empty(), "no memory asked, no --mem");
        task.memory_bytes_max = crate::executor::memory_bytes_max(1.5);
        assert_eq!(mem(&task), ["--mem=1536M"]);
        task.memory_bytes_max = Some(1);
        assert_eq!(mem(&task), ["--mem=1M"], "never rounded down to 0 (all)");
        task.memory_bytes_max = Some(0);
        assert!(mem(&task).is_empty(), "not --mem=0 (all)");
    }

    #[test]
    fn quotes_words_for_sh() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's $HOME"), "'it'\\''s $HOME'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn parses_scontrol_fields() {
        let line = "JobId=1 JobName=a b.sh UserId=root(0) JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 \
                    RunTime=01:02:03 NumNodes=1 NumCPUs=4 TRES=cpu=4,node=1,billing=4 TresPerNode=gres:gpu:2";
        let fields = parse_fields(line);
        assert_eq!(fields["JobName"], "a b.sh");
        assert_eq!(fields["TRES"], "cpu=4,node=1,billing=4");
        let record = JobRecord::from_fields(&fields, "scontrol").unwrap();
        assert_eq!(
            (record.exit_code, record.signal, record.elapsed_s),
            (3, 0, 3723)
        );
        assert_eq!((record.cpus, record.nodes, record.gpus), (4, 1, Some(2)));
        assert!(matches!(
            record.status(String::new()),
            TaskStatus::Exited {
                code: 3,
                wall_ms: 3_723_000,
                ..
            }
        ));
    }

    #[test]
    fn parses_jobcomp_lines() {
        let line = "JobId=7 UserId=root(0) GroupId=root(0) Name=x JobState=CANCELLED Partition=main TimeLimit=1 \
                    StartTime=2026-12-31T23:59:50 EndTime=2027-01-01T00:00:05 NodeList=vm NodeCnt=1 ProcCnt=2 \
                    Tres=cpu=2,mem=100M,node=1 DerivedExitCode=0:0 ExitCode=0:15";
        let record = JobRecord::from_fields(&parse_fields(line), "jobcomp").unwrap();
        assert_eq!(
            (record.elapsed_s, record.cpus, record.gpus, record.signal),
            (15, 2, None, 15)
        );
        let TaskStatus::Failed { reason, .. } = record.status(String::new()) else {
            panic!("not failed")
        };
        assert!(reason.starts_with("CANCELLED"), "{reason}");
    }

    #[test]
    fn parses_sacct_lines() {
        let record =
            JobRecord::from_sacct("CANCELLED by 0|0:15|12|2|1|billing=2,cpu=2,gres/gpu=1,node=1")
                .unwrap()
                .unwrap();
        assert_eq!(
            (record.state.as_str(), record.elapsed_s, record.gpus),
            ("CANCELLED", 12, Some(1))
        );
        let record = JobRecord::from_sacct("TIMEOUT|0:0|60|1|1|cpu=1")
            .unwrap()
            .unwrap();
        assert!(matches!(
            record.status(String::new()),
            TaskStatus::Failed { .. }
        ));
    }

    /// Real `scontrol show job -o` and jobcomp lines (tests/data/slurm):
    /// a success, exit 3, a cancel by signal 15, a cancel while pending.
    #[test]
    fn reads_real_slurm_records() {
        let scontrol = include_str!("../tests/data/slurm/scontrol-show-job.txt");
        let jobcomp = include_str!("../tests/data/slurm/jobcomp.txt");
        let read = |text: &str, source: &'static str| -> BTreeMap<String, JobRecord> {
            text.lines()
                .map(|line| {
                    let fields = parse_fields(line);
                    let record = JobRecord::from_fields(&fields, source)
                        .unwrap_or_else(|garbled| panic!("{line}: {garbled:?}"));
                    (fields["JobId"].clone(), record)
                })
                .collect()
        };
        for records in [read(scontrol, "scontrol"), read(jobcomp, "jobcomp")] {
            assert_eq!(records.len(), 4);
            let ok = &records["1"];
            assert_eq!(
                (ok.state.as_str(), ok.exit_code, ok.signal),
                ("COMPLETED", 0, 0)
            );
            assert!(matches!(
                ok.status(String::new()),
                TaskStatus::Exited { code: 0, .. }
            ));
            let three = &records["2"];
            assert!(matches!(
                three.status(String::new()),
                TaskStatus::Exited {
                    code: 3,
                    wall_ms: 0,
                    ..
                }
            ));
            let cancelled = &records["3"];
            assert_eq!(cancelled.elapsed_s, 2, "{cancelled:?}");
            let TaskStatus::Failed {
                reason, wall_ms, ..
            } = cancelled.status(String::new())
            else {
                panic!("cancelled is not failed: {cancelled:?}")
            };
            assert!(reason.starts_with("CANCELLED"), "{reason}");
            assert_eq!(wall_ms, 2_000);
            let pending = &records["4"];
            assert_eq!(
                (pending.state.as_str(), pending.elapsed_s),
                ("CANCELLED", 0)
            );
        }
        // slurmctld knows the signal; the completion log does not.
        assert_eq!(read(scontrol, "scontrol")["3"].signal, 15);
        assert_eq!(read(scontrol, "scontrol")["1"].cpus, 1);
        // Without slurmdbd, sacct prints no record line at all.
        let sacct = include_str!("../tests/data/slurm/sacct-without-slurmdbd.txt");
        assert!(sacct
            .lines()
            .all(|line| JobRecord::from_sacct(line).is_none()));
    }

    /// Garbage in a real record is never read as 0: the attempt fails with
    /// a reason quoting the text.
    #[test]
    fn garbled_records_fail_the_attempt() {
        let real = include_str!("../tests/data/slurm/scontrol-show-job.txt")
            .lines()
            .next()
            .unwrap();
        let garble = |field: &str, value: &str| -> Garbled {
            let mut fields = parse_fields(real);
            match value {
                "" => fields.remove(field),
                _ => fields.insert(field.to_owned(), value.to_owned()),
            };
            JobRecord::from_fields(&fields, "scontrol").expect_err(&format!("{field}={value}"))
        };
        let cases = [
            (
                "ExitCode",
                "x:0",
                r#"ExitCode "x:0" is not CODE:SIGNAL"#,
                Some(0),
            ),
            (
                "ExitCode",
                "1",
                r#"ExitCode "1" is not CODE:SIGNAL"#,
                Some(0),
            ),
            ("ExitCode", "", "no ExitCode", Some(0)),
            (
                "RunTime",
                "soon",
                r#"RunTime "soon" is not [D-]HH:MM:SS"#,
                None,
            ),
            (
                "NumCPUs",
                "four",
                r#"NumCPUs "four" is not a count"#,
                Some(0),
            ),
            (
                "TRES",
                "cpu=1,gres/gpu=lots",
                r#"gres/gpu "lots" is not a count"#,
                Some(0),
            ),
            ("JobState", "", "no JobState", None),
        ];
        for (field, value, expect, elapsed_s) in cases {
            let garbled = garble(field, value);
            assert!(
                garbled.reason.starts_with("scontrol: ") && garbled.reason.contains(expect),
                "{field}={value}: {garbled:?}"
            );
            assert_eq!(garbled.elapsed_s, elapsed_s, "{field}={value}");
        }
        // Without RunTime (the completion log), from StartTime and EndTime.
        let mut fields = parse_fields(real);
        fields.remove("RunTime");
        fields.insert("EndTime".into(), "2026-12-01T21:27:17.5".into());
        assert_eq!(
            JobRecord::from_fields(&fields, "jobcomp")
                .unwrap()
                .elapsed_s,
            0
        );
        fields.insert("EndTime".into(), "yesterday".into());
        let garbled = JobRecord::from_fields(&fields, "jobcomp").unwrap_err();
        assert!(
            garbled
                .reason
                .contains(r#"EndTime "yesterday" is not a date and time"#),
            "{garbled:?}"
        );
        fields.insert("EndTime".into(), "2026-12-01T21:27:16".into());
        let garbled = JobRecord::from_fields(&fields, "jobcomp").unwrap_err();
        assert!(
            garbled.reason.contains("is before StartTime"),
            "{garbled:?}"
        );

        // sacct lines: the garbled field, quoted with its line.
        for (line, expect) in [
            (
                "COMPLETED|zero|5|1|1|cpu=1",
                r#"ExitCode "zero" is not CODE:SIGNAL"#,
            ),
            (
                "COMPLETED|0:0|5s|1|1|cpu=1",
                r#"ElapsedRaw "5s" is not a number"#,
            ),
            (
                "COMPLETED|0:0|5|1|one|cpu=1",
                r#"NNodes "one" is not a count"#,
            ),
            ("|0:0|5|1|1|cpu=1", r#"State "" is empty"#),
        ] {
            let garbled = JobRecord::from_sacct(line).unwrap().unwrap_err();
            assert!(
                garbled.reason.contains(expect) && garbled.reason.contains(line),
                "{line}: {garbled:?}"
            );
        }
        assert!(
            JobRecord::from_sacct("garbage").is_none(),
            "not a record line"
        );

        // As a status: failed, never a success; Slurm's wall time when it
        // could be read, else the agent measures (`Unreadable`).
        let status = garble("ExitCode", "x:0").status("1", "out".into());
        let TaskStatus::Failed {
            reason,
            wall_ms: 0,
            output_tail,
        } = status
        else {
            panic!("not failed: {status:?}")
        };
        assert!(
            reason.contains(r#"unreadable Slurm record of job 1: scontrol: ExitCode "x:0""#),
            "{reason}"
        );
        assert_eq!(output_tail, "out");
        let status = garble("RunTime", "soon").status("1", String::new());
        assert!(
            matches!(&status, TaskStatus::Unreadable { reason, .. } if reason.contains(r#"RunTime "soon""#)),
            "{status:?}"
        );
    }

    #[test]
    fn reads_gres_and_durations() {
        assert_eq!(gres_gpus("gres:gpu:2"), Some(2));
        assert_eq!(gres_gpus("gres/gpu:a100:3"), Some(3));
        assert_eq!(gres_gpus("gres:gpu"), Some(1));
        assert_eq!(gres_gpus("gres:mps:100"), None);
        assert_eq!(parse_duration_s("2-00:00:01"), Some(172_801));
        assert_eq!(parse_duration_s("05:07"), Some(307));
        assert_eq!(time_limit_minutes(Duration::from_secs(61)), 2);
        assert_eq!(time_limit_minutes(Duration::ZERO), 1);
    }

    #[test]
    fn maps_queue_states() {
        assert_eq!(active_status("PENDING"), Some(TaskStatus::Queued));
        assert_eq!(active_status("COMPLETING"), Some(TaskStatus::Running));
        assert_eq!(active_status("COMPLETED"), None);
        assert!(parse_handle(&Handle("12;/tmp/x".into())).is_ok());
        assert!(parse_handle(&Handle("pid:12".into())).is_err());
        assert!(check_env_name("SBATCH_TIMELIMIT").is_err());
        assert!(check_env_name("1X").is_err());
        assert!(check_env_name("SUANWANG_JOB").is_ok());
    }
}
