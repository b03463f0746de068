//! The process executor with real processes and the real cgroup v2
//! hierarchy: attempts in cgroups of their own, escaped daemons killed,
//! limits where the controllers are, affinity without cgroups. No mocks.
//!
//! The cgroup tests need a writable cgroup2 hierarchy (root, or a delegated
//! subtree); without one they print why they skip, unless
//! `SUANWANG_REQUIRE_CGROUP2=1` (CI), which makes them fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use suanwang_agent::cgroup::{Cgroups, PIDS_MAX};
use suanwang_agent::executor::{memory_bytes_max, Executor, Handle, TaskSpec, TaskStatus};
use suanwang_agent::process::ProcessExecutor;
use suanwang_agent::SiteConfig;
use suanwang_api::RunSpec;

const REQUIRE_ENV: &str = "SUANWANG_REQUIRE_CGROUP2";
const END_TIMEOUT: Duration = Duration::from_secs(20);

/// cgroup v2 below the test's own cgroup, in a base of its own; `None`
/// (with the reason on stderr) when the tests are to be skipped.
#[allow(clippy::print_stderr)]
fn cgroups(test: &str) -> Option<Cgroups> {
    let name = format!("suanwang-test-{}-{test}", std::process::id());
    match Cgroups::detect(None, &name) {
        Ok(cgroups) => Some(cgroups),
        Err(problem) => {
            let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
            assert!(!required, "{REQUIRE_ENV}=1 but {problem}");
            eprintln!("skipped: {problem}; the cgroup v2 tests do not run");
            None
        }
    }
}

/// Attempt 1 of task 0 of job `j`: `sh -c script` in `dir`.
fn task(dir: &Path, pool: &str, units: u64, script: &str) -> TaskSpec {
    TaskSpec {
        job: "j".into(),
        task: 0,
        attempt: 1,
        pool: pool.into(),
        units,
        hours: 0.01,
        run: RunSpec {
            command: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: BTreeMap::new(),
            slurm_script: None,
        },
        work_dir: dir.join("work"),
        output_dir: dir.join("out"),
        env: BTreeMap::new(),
        wall_time_max: Duration::from_secs(60),
        memory_bytes_max: None,
    }
}

async fn wait_ended(executor: &ProcessExecutor, handle: &Handle) -> TaskStatus {
    let started = Instant::now();
    loop {
        match executor.poll(handle).await.expect("poll") {
            TaskStatus::Running => {}
            status => return status,
        }
        assert!(started.elapsed() < END_TIMEOUT, "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The contents of `path` once the task has written it.
async fn wait_file(path: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        assert!(
            started.elapsed() < END_TIMEOUT,
            "{} never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The v2 cgroup in a copy of /proc/PID/cgroup.
fn v2_line(proc_cgroup: &str) -> &str {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .expect("a 0:: line")
}

/// Whether `pid` is gone (or a zombie: dead, not yet reaped).
fn dead(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.starts_with(" Z"))
        })
        .unwrap_or(true)
}

#[tokio::test]
async fn an_attempt_runs_in_its_own_cgroup() {
    let Some(cgroups) = cgroups("own") else {
        return;
    };
    let base = cgroups.base().to_owned();
    let executor = ProcessExecutor::new(None, None).with_cgroups(cgroups, BTreeSet::new());
    let dir = tempfile::tempdir().unwrap();
    let spec = task(dir.path(), "cpu", 1, "cat /proc/self/cgroup > cg.txt");
    let handle = executor.start(&spec).await.unwrap();
    let status = wait_ended(&executor, &handle).await;
    assert!(
        matches!(status, TaskStatus::Exited { code: 0, .. }),
        "{status:?}"
    );
    let own = std::fs::read_to_string(spec.work_dir.join("cg.txt")).unwrap();
    let attempt = base.join("j-0-1");
    let inside = v2_line(&own).trim_start_matches('/');
    assert!(
        !inside.is_empty() && attempt.ends_with(inside),
        "the task ran in {inside:?}, not in {}",
        attempt.display()
    );
    assert!(!attempt.exists(), "the ended attempt's cgroup is removed");
    assert!(!base.exists(), "the base goes with its last attempt");
}

#[tokio::test]
async fn stop_kills_what_left_the_process_group() {
    let Some(cgroups) = cgroups("escape") else {
        return;
    };
    let base = cgroups.base().to_owned();
    let executor = ProcessExecutor::new(None, None).with_cgroups(cgroups, BTreeSet::new());
    let dir = tempfile::tempdir().unwrap();
    let spec = task(
        dir.path(),
        "cpu",
        1,
        "setsid sh -c 'echo $$ > daemon.pid; exec sleep 1000' & exec sleep 1000",
    );
    let handle = executor.start(&spec).await.unwrap();
    let daemon: u32 = wait_file(&spec.work_dir.join("daemon.pid"))
        .await
        .trim()
        .parse()
        .unwrap();
    // It really left: a session (and so a process group) of its own.
    let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[2],
        daemon.to_string(),
        "its own process group: {stat}"
    );
    let shell: serde_json::Value = serde_json::from_str(&handle.0).unwrap();
    assert_ne!(fields[2], shell["pid"].to_string());

    executor
        .stop(&handle, Duration::from_millis(200))
        .await
        .unwrap();
    let started = Instant::now();
    while !dead(daemon) {
        assert!(
            started.elapsed() < END_TIMEOUT,
            "the daemon {daemon} survived the stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = wait_ended(&executor, &handle).await;
    assert!(matches!(status, TaskStatus::Failed { .. }), "{status:?}");
    assert!(!base.join("j-0-1").exists(), "the cgroup is removed");
    assert!(!base.exists());
}

/// `cpu.max` for CPU pools, `pids.max`, and `memory.max` (no swap) for a
/// task that asked for memory, where those controllers reach the base;
/// where they do not, the executor says so, the kernel agrees, and the CPUs
/// of `cpus` still bound the attempt through affinity.
#[tokio::test]
async fn limits_where_the_controllers_are() {
    let Some(cgroups) = cgroups("limits") else {
        return;
    };
    let base = cgroups.base().to_owned();
    let controllers = cgroups.controllers();
    let executor = ProcessExecutor::new(Some("0".into()), None)
        .with_cgroups(cgroups, BTreeSet::from(["cpu".to_owned()]));
    let dir = tempfile::tempdir().unwrap();
    let mut spec = task(
        dir.path(),
        "cpu",
        2,
        "grep Cpus_allowed_list /proc/self/status > cpus.txt; exec sleep 1000",
    );
    // 0.25 GiB: what the agent passes for `memory_gib = 0.25`.
    spec.memory_bytes_max = memory_bytes_max(0.25);
    assert_eq!(spec.memory_bytes_max, Some(256 << 20));
    let handle = executor.start(&spec).await.unwrap();
    let cpus = wait_file(&spec.work_dir.join("cpus.txt")).await;
    assert_eq!(
        cpus, "Cpus_allowed_list:\t0\n",
        "taskset applies either way"
    );
    let attempt = base.join("j-0-1");
    let read = |file: &str| std::fs::read_to_string(attempt.join(file));
    // What the executor reports is what the kernel gives the attempt.
    let kernel = read("cgroup.controllers").unwrap();
    let kernel: BTreeSet<&str> = kernel.split_whitespace().collect();
    assert_eq!(kernel.contains("cpu"), controllers.cpu, "{kernel:?}");
    assert_eq!(kernel.contains("pids"), controllers.pids, "{kernel:?}");
    assert_eq!(kernel.contains("memory"), controllers.memory, "{kernel:?}");
    if controllers.cpu {
        assert_eq!(read("cpu.max").unwrap(), "200000 100000\n");
    } else {
        assert!(read("cpu.max").is_err(), "no cpu controller, no cpu.max");
    }
    if controllers.pids {
        assert_eq!(read("pids.max").unwrap(), format!("{PIDS_MAX}\n"));
    } else {
        assert!(read("pids.max").is_err(), "no pids controller, no pids.max");
    }
    if controllers.memory {
        assert_eq!(read("memory.max").unwrap(), format!("{}\n", 256 << 20));
        // Swap accounting is a kernel option: where it is, no swap.
        if let Ok(swap) = read("memory.swap.max") {
            assert_eq!(swap, "0\n");
        }
    } else {
        assert!(
            read("memory.max").is_err(),
            "no memory controller, no memory.max"
        );
        assert!(read("memory.swap.max").is_err());
    }
    executor
        .stop(&handle, Duration::from_millis(200))
        .await
        .unwrap();
    wait_ended(&executor, &handle).await;

    // Units of other pools are not cores: no CPU limit; a task that asked
    // for no memory: no memory limit.
    if controllers.cpu || controllers.memory {
        let spec = task(&dir.path().join("gpu"), "gpu", 2, "exec sleep 1000");
        assert_eq!(spec.memory_bytes_max, None);
        let handle = executor.start(&spec).await.unwrap();
        if controllers.cpu {
            assert_eq!(read("cpu.max").unwrap(), "max 100000\n");
        }
        if controllers.memory {
            assert_eq!(read("memory.max").unwrap(), "max\n");
        }
        executor
            .stop(&handle, Duration::from_millis(200))
            .await
            .unwrap();
        wait_ended(&executor, &handle).await;
    }
    assert!(!base.exists());
}

/// A task over its memory is OOM-killed (SIGKILL: exit 137), not left to
/// swap, and fails with a reason that names its memory limit; one within
/// it runs. Without the memory controller: not limited at all.
#[tokio::test]
#[allow(clippy::print_stderr)]
async fn a_task_over_its_memory_is_killed() {
    let Some(cgroups) = cgroups("oom") else {
        return;
    };
    let base = cgroups.base().to_owned();
    // The shell holds the 128 MB it reads; its limit is 64 MiB.
    let hog = "x=$(head -c 128000000 /dev/zero | tr '\\0' a); echo ${#x}";
    let dir = tempfile::tempdir().unwrap();
    if !cgroups.controllers().memory {
        // The documented fallback: no memory controller, no memory limit
        // (and no half-applied one): the same task runs to the end.
        eprintln!(
            "no memory controller reaches {}: memory is not limited",
            base.display()
        );
        let executor = ProcessExecutor::new(None, None).with_cgroups(cgroups, BTreeSet::new());
        let mut spec = task(&dir.path().join("unlimited"), "cpu", 1, hog);
        spec.memory_bytes_max = memory_bytes_max(0.0625);
        let handle = executor.start(&spec).await.unwrap();
        let status = wait_ended(&executor, &handle).await;
        assert!(
            matches!(status, TaskStatus::Exited { code: 0, .. }),
            "{status:?}"
        );
        assert!(!base.exists());
        return;
    }
    let swap_total_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("SwapTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let swap_bounded = base.join("memory.swap.max").exists() || swap_total_kb == 0;
    let executor = ProcessExecutor::new(None, None).with_cgroups(cgroups, BTreeSet::new());
    let mut spec = task(&dir.path().join("over"), "cpu", 1, hog);
    spec.memory_bytes_max = memory_bytes_max(0.0625);
    let handle = executor.start(&spec).await.unwrap();
    let status = wait_ended(&executor, &handle).await;
    if swap_bounded {
        assert!(
            matches!(&status, TaskStatus::Failed { reason, .. } if reason.contains("memory limit")),
            "{status:?}"
        );
    } else {
        eprintln!("swap without swap accounting: over its memory, the task swapped ({status:?})");
    }
    let mut spec = task(&dir.path().join("within"), "cpu", 1, hog);
    spec.memory_bytes_max = memory_bytes_max(1.0);
    let handle = executor.start(&spec).await.unwrap();
    let status = wait_ended(&executor, &handle).await;
    assert!(
        matches!(status, TaskStatus::Exited { code: 0, .. }),
        "{status:?}"
    );
    assert!(!base.exists());
}

fn site(cgroup: &str) -> SiteConfig {
    toml::from_str(&format!(
        "cpus = \"0\"\ncgroup = \"{cgroup}\"\n[[pools]]\nname = \"cpu\"\nkind = \"cpu\"\n\
         family = \"x86\"\ncapacity = 1\nprice_yuan_per_unit_hour = 0.1\n"
    ))
    .unwrap()
}

/// `cgroup = "off"`: no cgroup, CPU affinity only. Needs no cgroup v2.
#[tokio::test]
async fn cgroup_off_means_affinity_only() {
    let dir = tempfile::tempdir().unwrap();
    let executor = ProcessExecutor::for_site(&site("off"), dir.path(), None).unwrap();
    assert!(executor.cgroups().is_none());
    let spec = task(
        dir.path(),
        "cpu",
        1,
        "grep Cpus_allowed_list /proc/self/status > cpus.txt; cat /proc/self/cgroup > cg.txt",
    );
    let handle = executor.start(&spec).await.unwrap();
    let status = wait_ended(&executor, &handle).await;
    assert!(
        matches!(status, TaskStatus::Exited { code: 0, .. }),
        "{status:?}"
    );
    let read = |file: &str| std::fs::read_to_string(spec.work_dir.join(file)).unwrap();
    assert_eq!(read("cpus.txt"), "Cpus_allowed_list:\t0\n");
    // Where the test itself is (when it is in any v2 cgroup).
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    if own.contains("0::") {
        assert_eq!(v2_line(&read("cg.txt")), v2_line(&own));
    }
}

/// A cgroup the site file names must work: no silent fallback.
#[tokio::test]
async fn a_named_cgroup_that_does_not_work_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = ProcessExecutor::for_site(&site("/tmp/not-a-cgroup"), dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("cgroup: "), "{error}");
    assert!(!PathBuf::from("/tmp/not-a-cgroup").exists());
}
