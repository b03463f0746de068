//! End to end through a real Slurm cluster: sbatch, squeue, scontrol,
//! scancel. No mock Slurm.
//!
//! `SUANWANG_SLURM_BENCH=1` also runs `slurm_bench`: Slurm's own rate for
//! 1,000 `true` tasks, as separate jobs through the executor and as one
//! array job.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use suanwang_agent::executor::{
    memory_bytes_max, Executor, ExecutorError, Handle, TaskSpec, TaskStatus,
};
use suanwang_agent::slurm::{PoolKind, SlurmConfig, SlurmExecutor, SlurmUsage};
use suanwang_api::RunSpec;

const REQUIRE_ENV: &str = "SUANWANG_REQUIRE_SLURM";
const BENCH_ENV: &str = "SUANWANG_SLURM_BENCH";
/// Longest a test job may take from submission to its end (they may queue
/// behind each other on a small node).
const END_TIMEOUT: Duration = Duration::from_secs(180);

/// Whether a Slurm cluster answers with a usable node; `None` (with the
/// reason on stderr) when the tests are to be skipped. Fails when
/// `SUANWANG_REQUIRE_SLURM=1`.
#[allow(clippy::print_stderr)]
fn slurm() -> Option<SlurmExecutor> {
    slurm_with(SlurmConfig::default())
}

#[allow(clippy::print_stderr)]
fn slurm_with(mut config: SlurmConfig) -> Option<SlurmExecutor> {
    let problem = match std::process::Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
    {
        Err(e) => Some(format!("sinfo cannot run ({e}): Slurm is not installed")),
        Ok(out) if !out.status.success() => Some(format!(
            "sinfo failed: {} (run scripts/slurm.sh as root)",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(out) => {
            let states = String::from_utf8_lossy(&out.stdout).into_owned();
            let usable = states.lines().any(|s| {
                let s = s
                    .trim()
                    .trim_end_matches(['*', '~', '#', '$', '@', '^', '-', '!', '%']);
                matches!(s, "idle" | "mixed" | "allocated" | "completing")
            });
            (!usable).then(|| format!("no usable Slurm node (sinfo states: {:?})", states.trim()))
        }
    };
    if let Some(problem) = problem {
        let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
        assert!(!required, "{REQUIRE_ENV}=1 but {problem}");
        eprintln!("skipped: {problem}; the Slurm end-to-end tests do not run");
        return None;
    }
    config.pools.insert("gpu".into(), PoolKind::Gpu);
    config.pools.insert("hpc".into(), PoolKind::Hpc);
    Some(SlurmExecutor::new(config))
}

fn task(work_dir: &Path, name: &str, command: &str, args: &[&str]) -> TaskSpec {
    let mut env = BTreeMap::new();
    env.insert("SUANWANG_JOB".to_owned(), name.to_owned());
    env.insert("SUANWANG_TASK_INDEX".to_owned(), "0".to_owned());
    TaskSpec {
        job: format!("it-{name}"),
        task: 0,
        attempt: 1,
        pool: "cpu".into(),
        units: 1,
        hours: 0.01,
        run: RunSpec {
            command: command.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: BTreeMap::new(),
            slurm_script: None,
        },
        work_dir: work_dir.to_owned(),
        output_dir: work_dir.to_owned(),
        env,
        wall_time_max: Duration::from_secs(600),
        memory_bytes_max: None,
    }
}

async fn wait_until<F: Fn(&TaskStatus) -> bool>(
    slurm: &SlurmExecutor,
    handle: &Handle,
    done: F,
) -> TaskStatus {
    let started = Instant::now();
    loop {
        let status = slurm.poll(handle).await.expect("poll");
        if done(&status) {
            return status;
        }
        assert!(
            started.elapsed() < END_TIMEOUT,
            "job {} still {status:?} after {END_TIMEOUT:?}",
            handle.0
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ended(status: &TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Exited { .. } | TaskStatus::Failed { .. } | TaskStatus::Unknown
    )
}

async fn run_to_end(slurm: &SlurmExecutor, spec: &TaskSpec) -> (Handle, TaskStatus, SlurmUsage) {
    let handle = slurm.start(spec).await.expect("sbatch");
    let status = wait_until(slurm, &handle, ended).await;
    let usage = slurm
        .usage(&handle)
        .await
        .expect("usage")
        .expect("Slurm knows the job");
    (handle, status, usage)
}

#[tokio::test]
async fn true_exits_zero_with_usage() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = task(dir.path(), "true", "true", &[]);
    let (handle, status, usage) = run_to_end(&slurm, &spec).await;
    let TaskStatus::Exited {
        code,
        wall_ms,
        output_tail,
    } = status
    else {
        panic!("{status:?}")
    };
    assert_eq!(code, 0);
    assert!(wall_ms < 10_000, "wall {wall_ms} ms");
    assert_eq!(output_tail, "");
    assert_eq!(usage.state, "COMPLETED");
    assert_eq!(
        (usage.alloc_cpus, usage.alloc_nodes, usage.alloc_gpus),
        (1, 1, Some(0))
    );
    assert!(dir.path().join("suanwang.slurm").exists());
    // Stopping a finished job is a no-op, and polling again gives the same.
    slurm
        .stop(&handle, Duration::from_secs(1))
        .await
        .expect("stop after end");
    assert!(matches!(
        slurm.poll(&handle).await.unwrap(),
        TaskStatus::Exited { code: 0, .. }
    ));
}

#[tokio::test]
async fn false_exits_one() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = task(dir.path(), "false", "false", &[]);
    let (_, status, usage) = run_to_end(&slurm, &spec).await;
    assert!(
        matches!(status, TaskStatus::Exited { code: 1, .. }),
        "{status:?}"
    );
    assert_eq!(usage.state, "FAILED");
}

#[tokio::test]
async fn args_are_quoted_and_env_passed() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = task(
        dir.path(),
        "args",
        "sh",
        &[
            "-c",
            r#"printf '<%s>' "$@"; echo; echo "job=$SUANWANG_JOB extra=$EXTRA"; pwd; exit 3"#,
            "sh",
            "a b",
            "it's",
            "$HOME",
            "",
        ],
    );
    spec.run.env.insert("EXTRA".into(), "x,y z'\"".into());
    let (_, status, _) = run_to_end(&slurm, &spec).await;
    let TaskStatus::Exited {
        code, output_tail, ..
    } = status
    else {
        panic!("{status:?}")
    };
    assert_eq!(code, 3);
    let pwd = dir.path().canonicalize().unwrap();
    assert_eq!(
        output_tail,
        format!(
            "<a b><it's><$HOME><>\njob=args extra=x,y z'\"\n{}\n",
            pwd.display()
        )
    );
}

#[tokio::test]
async fn wall_time_is_measured() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = task(dir.path(), "sleep2", "sleep", &["2"]);
    let (_, status, usage) = run_to_end(&slurm, &spec).await;
    let TaskStatus::Exited {
        code: 0, wall_ms, ..
    } = status
    else {
        panic!("{status:?}")
    };
    // Slurm counts whole seconds.
    assert!((1_000..=4_000).contains(&wall_ms), "wall {wall_ms} ms");
    assert_eq!(usage.elapsed_s * 1000, wall_ms);
}

#[tokio::test]
async fn sleep_is_stopped() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = task(
        dir.path(),
        "sleep30",
        "sh",
        &["-c", "echo started; exec sleep 30"],
    );
    let handle = slurm.start(&spec).await.expect("sbatch");
    let started = Instant::now();
    wait_until(&slurm, &handle, |s| {
        matches!(s, TaskStatus::Running) || ended(s)
    })
    .await;
    // Wait for the script to have started, so the signal has a target.
    while !std::fs::read_to_string(dir.path().join("slurm-output.txt"))
        .unwrap_or_default()
        .contains("started")
    {
        assert!(started.elapsed() < END_TIMEOUT, "never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slurm
        .stop(&handle, Duration::from_secs(2))
        .await
        .expect("stop");
    let status = wait_until(&slurm, &handle, ended).await;
    let TaskStatus::Failed {
        reason,
        wall_ms,
        output_tail,
    } = status
    else {
        panic!("{status:?}")
    };
    assert!(
        reason.contains("signal 15") || reason.starts_with("CANCELLED"),
        "{reason}"
    );
    assert!(wall_ms < 20_000, "wall {wall_ms} ms");
    assert!(output_tail.contains("started"), "{output_tail:?}");
    // Idempotent.
    slurm
        .stop(&handle, Duration::from_secs(1))
        .await
        .expect("second stop");
}

#[tokio::test]
async fn stubborn_job_is_killed_after_grace() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = task(
        dir.path(),
        "stubborn",
        "sh",
        &[
            "-c",
            "trap '' TERM; echo started; while :; do sleep 1; done",
        ],
    );
    let handle = slurm.start(&spec).await.expect("sbatch");
    let started = Instant::now();
    while !std::fs::read_to_string(dir.path().join("slurm-output.txt"))
        .unwrap_or_default()
        .contains("started")
    {
        assert!(started.elapsed() < END_TIMEOUT, "never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stop_began = Instant::now();
    slurm
        .stop(&handle, Duration::from_secs(1))
        .await
        .expect("stop");
    assert!(
        stop_began.elapsed() >= Duration::from_secs(1),
        "stop returned before the grace period"
    );
    let status = wait_until(&slurm, &handle, ended).await;
    assert!(matches!(status, TaskStatus::Failed { .. }), "{status:?}");
}

#[tokio::test]
async fn pending_job_is_cancelled() {
    let config = SlurmConfig {
        extra_sbatch_args: vec!["--begin=now+3600".into()],
        ..SlurmConfig::default()
    };
    let Some(slurm) = slurm_with(config) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = task(dir.path(), "pending", "true", &[]);
    let handle = slurm.start(&spec).await.expect("sbatch");
    assert_eq!(slurm.poll(&handle).await.unwrap(), TaskStatus::Queued);
    slurm
        .stop(&handle, Duration::from_secs(5))
        .await
        .expect("stop");
    let status = wait_until(&slurm, &handle, ended).await;
    let TaskStatus::Failed {
        reason, wall_ms, ..
    } = status
    else {
        panic!("{status:?}")
    };
    assert!(reason.starts_with("CANCELLED"), "{reason}");
    assert_eq!(wall_ms, 0);
}

#[tokio::test]
async fn slurm_script_runs_with_its_resources() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = task(dir.path(), "script", "ignored-for-slurm", &[]);
    spec.units = 2;
    spec.run.env.insert("GREETING".into(), "ni hao".into());
    spec.run.slurm_script = Some(
        "#!/bin/bash\n#SBATCH --comment=suanwang-test\necho \"$GREETING from $SLURM_JOB_NAME cpus=$SLURM_CPUS_PER_TASK\"\n\
         for i in $(seq 1 2000); do echo \"line $i\"; done\nexit 7\n"
            .into(),
    );
    let (_, status, usage) = run_to_end(&slurm, &spec).await;
    let TaskStatus::Exited {
        code, output_tail, ..
    } = status
    else {
        panic!("{status:?}")
    };
    assert_eq!(code, 7);
    assert!(
        output_tail.len() <= 4096 && output_tail.ends_with("line 2000\n"),
        "{output_tail:?}"
    );
    let head = std::fs::read_to_string(dir.path().join("slurm-output.txt")).unwrap();
    assert!(
        head.starts_with("ni hao from suanwang-it-script-0-1 cpus=2\n"),
        "{head:.80}"
    );
    assert_eq!(usage.alloc_cpus, 2);
}

/// A task's memory becomes `--mem` (the job sees it as
/// `SLURM_MEM_PER_NODE`, in MiB); more than the node has is refused at
/// once, not left pending.
#[tokio::test]
async fn memory_is_asked_with_mem() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = "echo mem=$SLURM_MEM_PER_NODE";
    let mut spec = task(dir.path(), "mem", "sh", &["-c", script]);
    spec.memory_bytes_max = memory_bytes_max(0.0625);
    let (_, status, _) = run_to_end(&slurm, &spec).await;
    let TaskStatus::Exited {
        code: 0,
        output_tail,
        ..
    } = status
    else {
        panic!("{status:?}")
    };
    assert_eq!(output_tail, "mem=64\n");

    let dir = tempfile::tempdir().unwrap();
    let mut spec = task(dir.path(), "mem-huge", "true", &[]);
    spec.memory_bytes_max = memory_bytes_max(1e6);
    match slurm.start(&spec).await {
        Err(ExecutorError::Invalid(reason)) => {
            assert!(reason.starts_with("sbatch refused the job"), "{reason}");
        }
        other => panic!("16 TiB on one test node: {other:?}"),
    }
}

#[tokio::test]
async fn gpu_task_gets_fake_gpus() {
    let Some(slurm) = slurm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = "echo on_node=$SLURM_GPUS_ON_NODE visible=$CUDA_VISIBLE_DEVICES";
    let mut spec = task(dir.path(), "gpu", "sh", &["-c", script]);
    spec.pool = "gpu".into();
    spec.units = 2;
    let (_, status, usage) = run_to_end(&slurm, &spec).await;
    let TaskStatus::Exited {
        code: 0,
        output_tail,
        ..
    } = status
    else {
        panic!("{status:?}")
    };
    // CUDA_VISIBLE_DEVICES is set only when the fake GPUs are character
    // devices (scripts/slurm.sh falls back to plain files without CAP_MKNOD).
    assert!(
        ["on_node=2 visible=0,1\n", "on_node=2 visible=\n"].contains(&output_tail.as_str()),
        "{output_tail:?}"
    );
    assert_eq!(usage.alloc_gpus, Some(2));
}

#[tokio::test]
async fn unknown_and_invalid() {
    let Some(slurm) = slurm() else { return };
    // Past any job id this test cluster hands out (the maximum is 67,043,328).
    let handle = Handle("67000000;/nonexistent/slurm-output.txt".into());
    assert_eq!(slurm.poll(&handle).await.unwrap(), TaskStatus::Unknown);
    slurm
        .stop(&handle, Duration::from_secs(1))
        .await
        .expect("stop unknown");
    assert_eq!(slurm.usage(&handle).await.unwrap(), None);

    let dir = tempfile::tempdir().unwrap();
    let mut spec = task(dir.path(), "toomany", "true", &[]);
    spec.pool = "gpu".into();
    spec.units = 64;
    let err = slurm
        .start(&spec)
        .await
        .expect_err("64 GPUs on a 2-GPU node");
    assert!(matches!(err, ExecutorError::Invalid(_)), "{err:?}");
    let mut spec = task(dir.path(), "env", "true", &[]);
    spec.run.env.insert("SBATCH_PARTITION".into(), "x".into());
    assert!(matches!(
        slurm.start(&spec).await,
        Err(ExecutorError::Invalid(_))
    ));
}

/// Slurm's own rate for 1,000 `true` tasks: one sbatch per task through the
/// executor, then one array job. Runs only with `SUANWANG_SLURM_BENCH=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::print_stdout, clippy::print_stderr)]
async fn slurm_bench() {
    if std::env::var(BENCH_ENV).map_or(true, |v| v != "1") {
        eprintln!("skipped: set {BENCH_ENV}=1 to measure Slurm's rate for 1,000 tasks");
        return;
    }
    let Some(slurm) = slurm() else { return };
    let n: usize = std::env::var("SUANWANG_SLURM_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let cpus = sinfo_cpus();
    let dir = tempfile::tempdir().unwrap();
    let run_tag = format!("bench{}", std::process::id());

    // 1. One sbatch per task, through the executor.
    let began = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let work_dir = dir.path().join(format!("t{i}"));
        std::fs::create_dir_all(&work_dir).unwrap();
        let mut spec = task(&work_dir, &run_tag, "true", &[]);
        spec.task = i as u64;
        handles.push(slurm.start(&spec).await.expect("sbatch"));
    }
    let submitted = began.elapsed();
    wait_for_queue_empty(&format!("suanwang-it-{run_tag}-")).await;
    let done = began.elapsed();
    let mut ok = 0;
    for handle in &handles {
        if matches!(
            slurm.poll(handle).await.unwrap(),
            TaskStatus::Exited { code: 0, .. }
        ) {
            ok += 1;
        }
    }
    assert_eq!(ok, n, "all tasks exit 0");
    println!(
        "slurm bench (separate jobs): {n} tasks, {cpus} CPUs: submitted in {:.1} s ({:.0} sbatch/s), all done after {:.1} s ({:.1} completions/s)",
        submitted.as_secs_f64(),
        n as f64 / submitted.as_secs_f64(),
        done.as_secs_f64(),
        n as f64 / done.as_secs_f64()
    );

    // 2. One array job of the same tasks.
    let name = format!("suanwang-array-{run_tag}");
    let began = Instant::now();
    let out = std::process::Command::new("sbatch")
        .args([
            "--parsable",
            &format!("--job-name={name}"),
            &format!("--array=0-{}", n - 1),
            "--ntasks=1",
            "--cpus-per-task=1",
            "--time=5",
            &format!("--output={}/array-%a.txt", dir.path().display()),
            "--wrap=true",
        ])
        .output()
        .expect("sbatch --array");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_queue_empty(&name).await;
    let done = began.elapsed();
    println!(
        "slurm bench (array job): {n} tasks, {cpus} CPUs: all done after {:.1} s ({:.1} completions/s)",
        done.as_secs_f64(),
        n as f64 / done.as_secs_f64()
    );
}

fn sinfo_cpus() -> String {
    std::process::Command::new("sinfo")
        .args(["-h", "-o", "%C"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .rsplit('/')
                .next()
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_default()
}

/// Waits until no job whose name starts with `prefix` is in the queue.
async fn wait_for_queue_empty(prefix: &str) {
    let began = Instant::now();
    loop {
        let out = tokio::process::Command::new("squeue")
            .args(["-h", "-o", "%j"])
            .output()
            .await
            .expect("squeue");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let left = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count();
        if left == 0 {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(1800),
            "{left} jobs still queued"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
