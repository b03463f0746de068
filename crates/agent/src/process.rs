//! The `process` executor: each attempt is a child process (in its own
//! process group) running in the attempt's working directory.
//!
//! Restart-safe: the task runs under `sh -c`, which writes the exit code to
//! `.exit` in the working directory when the command ends, so an agent that
//! restarts (and no longer owns the child) still learns how it ended. The
//! handle records the pid and its kernel start time, so a reused pid is not
//! mistaken for the task.
//!
//! Limits: where cgroup v2 is usable (site config `cgroup`, see
//! `cgroup.rs`), each attempt runs in a cgroup of its own that the wrapper
//! shell enters before it runs the command; CPU pools get `cpu.max` of
//! their units, every attempt `pids.max`, and an attempt whose job asked for
//! memory `memory.max` (no swap), where those controllers reach us.
//! The attempt ends when the wrapper shell does: what it left running in
//! its cgroup is killed then and the cgroup removed, so no process of an
//! ended attempt holds the site's units. Without cgroup v2, stray
//! processes can outlive their attempt. Independently, `cpus` in the site
//! config pins every attempt to those CPUs with `taskset` (a set of CPUs;
//! `cpu.max` is a share, not a place).
//!
//! Stop: SIGTERM to the group, SIGKILL after the grace period, then
//! `cgroup.kill` for what left the group (setsid, daemons).

use std::collections::{BTreeSet, HashMap};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, Cgroups};
use crate::config::{CgroupSetting, SiteConfig};
use crate::executor::{Executor, ExecutorError, Handle, TaskSpec, TaskStatus};

/// Bytes of output kept for the status report.
pub const OUTPUT_TAIL_BYTES: u64 = 4 * 1024;
pub const OUTPUT_FILE: &str = "output.log";
pub const EXIT_FILE: &str = ".exit";
/// The attempt's handle, written as soon as it is spawned: an agent killed
/// before it saved its state finds the attempt already started.
pub const HANDLE_FILE: &str = ".handle";

#[derive(Debug)]
pub struct ProcessExecutor {
    cpus: Option<String>,
    /// Put first on the tasks' PATH (the agent's own directory, so a job may
    /// run `suanwang work render`).
    path_prefix: Option<PathBuf>,
    /// Where attempts get their cgroups; `None`: no cgroup v2.
    cgroups: Option<Cgroups>,
    /// The pools whose units are cores: their attempts get `cpu.max`.
    cpu_pools: BTreeSet<String>,
    children: Mutex<HashMap<u32, tokio::process::Child>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProcessHandle {
    pid: u32,
    /// Kernel start time of the process (clock ticks since boot).
    start: u64,
    dir: PathBuf,
    started_at_ms: i64,
    /// The attempt's cgroup; absent without cgroup v2 (and in handles
    /// written before it was used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cgroup: Option<PathBuf>,
}

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// The start time of `pid` from /proc, if it runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // Field 22 overall is the 20th after the name.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The attempt's shell runs: its pid is alive and is still the same process.
fn running(handle: &ProcessHandle) -> bool {
    start_time(handle.pid) == Some(handle.start) && !is_zombie(handle.pid)
}

/// A zombie still has /proc/PID until it is reaped; it is not running.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|i| stat[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}

pub fn output_tail(dir: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(dir.join(OUTPUT_FILE)) else {
        return String::new();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(OUTPUT_TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.take(OUTPUT_TAIL_BYTES).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A command is a program name looked up on PATH, an absolute path, or a
/// path inside the working directory; never a path that climbs out of it.
fn check_command(command: &str) -> Result<(), ExecutorError> {
    if command.is_empty() || command.contains('\0') {
        return Err(ExecutorError::Invalid("empty command".into()));
    }
    let path = Path::new(command);
    if !path.is_absolute() && path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(ExecutorError::Invalid(format!(
            "command {command:?} leaves the working directory"
        )));
    }
    Ok(())
}

impl ProcessExecutor {
    /// Without cgroups: `cpus` (taskset syntax) is the only limit.
    pub fn new(cpus: Option<String>, path_prefix: Option<PathBuf>) -> ProcessExecutor {
        ProcessExecutor {
            cpus,
            path_prefix,
            cgroups: None,
            cpu_pools: BTreeSet::new(),
            children: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_cgroups(self, cgroups: Cgroups, cpu_pools: BTreeSet<String>) -> ProcessExecutor {
        ProcessExecutor {
            cgroups: Some(cgroups),
            cpu_pools,
            ..self
        }
    }

    /// The executor a site file describes, for the agent whose state is in
    /// `state_dir`; says once which limits apply. `auto` falls back to
    /// affinity only; a cgroup the file names must work.
    pub fn for_site(
        config: &SiteConfig,
        state_dir: &Path,
        path_prefix: Option<PathBuf>,
    ) -> anyhow::Result<ProcessExecutor> {
        let executor = ProcessExecutor::new(config.cpus.clone(), path_prefix);
        let parent = match &config.cgroup {
            CgroupSetting::Off => {
                tracing::info!(cpus = ?config.cpus, "process executor: cgroup = off; limits by CPU affinity only");
                return Ok(executor);
            }
            CgroupSetting::Auto => None,
            CgroupSetting::Path(path) => Some(path.as_path()),
        };
        match Cgroups::detect(parent, &cgroup::base_name(state_dir)) {
            Ok(cgroups) => {
                let controllers = cgroups.controllers();
                tracing::info!(
                    base = %cgroups.base().display(),
                    cpu_max = controllers.cpu,
                    pids_max = controllers.pids,
                    memory_max = controllers.memory,
                    cpus = ?config.cpus,
                    "process executor: each attempt in its own cgroup v2",
                );
                let cpu_pools = config
                    .pools
                    .iter()
                    .filter(|pool| pool.kind == suanwang_api::ResourceKind::Cpu)
                    .map(|pool| pool.name.clone())
                    .collect();
                Ok(executor.with_cgroups(cgroups, cpu_pools))
            }
            Err(reason) if parent.is_none() => {
                tracing::info!(%reason, cpus = ?config.cpus, "process executor: no cgroup v2; limits by CPU affinity only");
                Ok(executor)
            }
            Err(reason) => anyhow::bail!("cgroup: {reason}"),
        }
    }

    pub fn cgroups(&self) -> Option<&Cgroups> {
        self.cgroups.as_ref()
    }

    fn exit_code(dir: &Path) -> Option<(i32, std::time::SystemTime)> {
        let path = dir.join(EXIT_FILE);
        let code = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        Some((code, modified))
    }

    fn finished(handle: &ProcessHandle, signal: Option<i32>) -> TaskStatus {
        let output_tail = output_tail(&handle.dir);
        match Self::exit_code(&handle.dir) {
            Some((code, modified)) => {
                let ended_ms = modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or(handle.started_at_ms);
                let wall_ms =
                    u64::try_from(ended_ms.saturating_sub(handle.started_at_ms)).unwrap_or(0);
                TaskStatus::Exited {
                    code,
                    wall_ms,
                    output_tail,
                }
            }
            None => {
                let wall_ms =
                    u64::try_from(now_ms().saturating_sub(handle.started_at_ms)).unwrap_or(0);
                let reason = match signal {
                    Some(signal) => format!("killed by signal {signal}"),
                    None => {
                        "the process ended without an exit code (killed, or lost across a restart)"
                            .to_owned()
                    }
                };
                TaskStatus::Failed {
                    reason,
                    wall_ms,
                    output_tail,
                }
            }
        }
    }
}

/// An attempt that failed after the kernel killed some of its processes
/// for going over `memory.max` says so: an exit code of 137 alone does not
/// tell the tenant to ask for more memory.
fn out_of_memory(status: TaskStatus, oom_kills: u64) -> TaskStatus {
    match status {
        TaskStatus::Exited {
            code,
            wall_ms,
            output_tail,
        } if code != 0 && oom_kills > 0 => TaskStatus::Failed {
            reason: format!(
                "exit code {code}: over its memory limit (the kernel killed {oom_kills} of its processes); ask for more memory_gib"
            ),
            wall_ms,
            output_tail,
        },
        other => other,
    }
}

fn parse(handle: &Handle) -> Result<ProcessHandle, ExecutorError> {
    serde_json::from_str(&handle.0)
        .map_err(|e| ExecutorError::Invalid(format!("bad process handle: {e}")))
}

async fn signal_group(pid: u32, signal: &str) {
    // `kill -SIG -PGID` signals the whole group: the shell and its command.
    let _ = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

#[async_trait]
impl Executor for ProcessExecutor {
    fn name(&self) -> &'static str {
        "process"
    }

    fn meters_while_running(&self) -> bool {
        true
    }

    async fn start(&self, task: &TaskSpec) -> Result<Handle, ExecutorError> {
        check_command(&task.run.command)?;
        std::fs::create_dir_all(&task.work_dir)?;
        // Started by an earlier life of this agent that died before saving
        // its state: adopt the attempt instead of running it twice.
        if let Ok(text) = std::fs::read_to_string(task.work_dir.join(HANDLE_FILE)) {
            if serde_json::from_str::<ProcessHandle>(&text).is_ok() {
                return Ok(Handle(text));
            }
        }
        std::fs::create_dir_all(&task.output_dir)?;
        let log = std::fs::File::create(task.work_dir.join(OUTPUT_FILE))?;
        let _ = std::fs::remove_file(task.work_dir.join(EXIT_FILE));
        let cgroup = match &self.cgroups {
            Some(cgroups) => {
                let name = cgroup::attempt_name(&task.job, task.task, task.attempt);
                let cores = self.cpu_pools.contains(&task.pool).then_some(task.units);
                Some(cgroups.create(&name, cores, task.memory_bytes_max).await?)
            }
            None => None,
        };
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut command = tokio::process::Command::new("taskset");
                command.arg("-c").arg(cpus).arg("sh");
                command
            }
            None => tokio::process::Command::new("sh"),
        };
        // $1: the cgroup to enter first, or empty. A shell that cannot
        // enter it runs nothing and ends with 125, the reason in the output.
        let script = format!(
            "if [ -n \"$1\" ] && ! {{ {enter}; }}; then \
             echo \"suanwang: cannot enter the cgroup $1\" >&2; code=125; \
             else shift; \"$@\"; code=$?; fi; \
             printf '%s' \"$code\" > .exit.tmp && mv .exit.tmp .exit; exit $code",
            enter = cgroup::ENTER
        );
        command
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(cgroup.as_deref().unwrap_or(Path::new("")))
            .arg(&task.run.command)
            .args(&task.run.args)
            .current_dir(&task.work_dir)
            .envs(&task.run.env)
            .envs(&task.env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(false);
        if let Some(prefix) = &self.path_prefix {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![prefix.clone()];
            paths.extend(std::env::split_paths(&path));
            if let Ok(joined) = std::env::join_paths(paths) {
                command.env("PATH", joined);
            }
        }
        let started_at_ms = now_ms();
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                if let Some(path) = &cgroup {
                    cgroup::remove(path).await;
                }
                return Err(error.into());
            }
        };
        let pid = child.id().ok_or_else(|| {
            ExecutorError::Unavailable("the child exited before it had a pid".into())
        })?;
        let start = start_time(pid).unwrap_or(0);
        self.children
            .lock()
            .expect("children lock")
            .insert(pid, child);
        let handle = ProcessHandle {
            pid,
            start,
            dir: task.work_dir.clone(),
            started_at_ms,
            cgroup,
        };
        let text =
            serde_json::to_string(&handle).map_err(|e| ExecutorError::Invalid(e.to_string()))?;
        if let Err(error) = std::fs::write(task.work_dir.join(HANDLE_FILE), &text) {
            tracing::warn!(%error, dir = %task.work_dir.display(), "cannot record the attempt's handle");
        }
        Ok(Handle(text))
    }

    async fn poll(&self, handle: &Handle) -> Result<TaskStatus, ExecutorError> {
        let handle = parse(handle)?;
        let owned = {
            let mut children = self.children.lock().expect("children lock");
            match children.get_mut(&handle.pid) {
                Some(child) => match child.try_wait()? {
                    Some(status) => {
                        children.remove(&handle.pid);
                        Some(Some(std::os::unix::process::ExitStatusExt::signal(&status)))
                    }
                    None => Some(None),
                },
                None => None,
            }
        };
        let status = match owned {
            Some(None) => return Ok(TaskStatus::Running),
            Some(Some(signal)) => Self::finished(&handle, signal),
            // Not our child (the agent restarted): look at /proc and .exit.
            None => {
                if running(&handle) {
                    return Ok(TaskStatus::Running);
                } else if handle.dir.exists() {
                    Self::finished(&handle, None)
                } else {
                    TaskStatus::Unknown
                }
            }
        };
        // The attempt ended with its shell: what it left behind dies now.
        let mut status = status;
        if let Some(path) = &handle.cgroup {
            status = out_of_memory(status, cgroup::oom_kills(path));
            let cpu_us = cgroup::remove(path).await;
            tracing::debug!(cgroup = %path.display(), cpu_ms = cpu_us.map(|us| us / 1_000), "attempt ended");
        }
        Ok(status)
    }

    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<(), ExecutorError> {
        let handle = parse(handle)?;
        if running(&handle) {
            signal_group(handle.pid, "TERM").await;
            let deadline = tokio::time::Instant::now() + grace;
            let ended = loop {
                {
                    let mut children = self.children.lock().expect("children lock");
                    if let Some(child) = children.get_mut(&handle.pid) {
                        if child.try_wait()?.is_some() {
                            children.remove(&handle.pid);
                            break true;
                        }
                    }
                }
                if !running(&handle) {
                    break true;
                }
                if tokio::time::Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if !ended {
                signal_group(handle.pid, "KILL").await;
            }
        }
        // What left the process group (setsid, a daemon) had no signal.
        if let Some(path) = &handle.cgroup {
            cgroup::kill(path);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_is_named() {
        let exited = |code| TaskStatus::Exited {
            code,
            wall_ms: 5,
            output_tail: "tail".into(),
        };
        assert_eq!(out_of_memory(exited(0), 1), exited(0), "succeeded anyway");
        assert_eq!(out_of_memory(exited(137), 0), exited(137), "no OOM kill");
        match out_of_memory(exited(137), 2) {
            TaskStatus::Failed {
                reason,
                wall_ms: 5,
                output_tail,
            } => {
                assert!(reason.contains("memory limit"), "{reason}");
                assert_eq!(output_tail, "tail");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_stay_inside() {
        assert!(check_command("true").is_ok());
        assert!(check_command("/bin/true").is_ok());
        assert!(check_command("bin/run.sh").is_ok());
        assert!(check_command("../x").is_err());
        assert!(check_command("a/../../x").is_err());
        assert!(check_command("").is_err());
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_time(std::process::id()).is_some());
    }

    /// An agent killed between starting an attempt and saving its state
    /// starts it again after a restart: the attempt is adopted, not rerun.
    #[tokio::test]
    async fn a_started_attempt_is_adopted() {
        let dir = std::env::temp_dir().join(format!("suanwang-adopt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spec = TaskSpec {
            job: "j".into(),
            task: 0,
            attempt: 1,
            pool: "p".into(),
            units: 1,
            hours: 0.01,
            run: suanwang_api::RunSpec {
                command: "sh".into(),
                args: vec!["-c".into(), "echo ran >> ../runs; sleep 0.3".into()],
                env: Default::default(),
                slurm_script: None,
            },
            work_dir: dir.join("work"),
            output_dir: dir.join("out"),
            env: Default::default(),
            wall_time_max: Duration::from_secs(60),
            memory_bytes_max: None,
        };
        let first = ProcessExecutor::new(None, None).start(&spec).await.unwrap();
        // A new executor: the agent restarted.
        let restarted = ProcessExecutor::new(None, None);
        let second = restarted.start(&spec).await.unwrap();
        assert_eq!(first, second);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match restarted.poll(&second).await.unwrap() {
                TaskStatus::Running => {}
                TaskStatus::Exited { code, .. } => {
                    assert_eq!(code, 0);
                    break;
                }
                other => panic!("{other:?}"),
            }
            assert!(tokio::time::Instant::now() < deadline, "never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(std::fs::read_to_string(dir.join("runs")).unwrap(), "ran\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
