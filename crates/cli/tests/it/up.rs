//! `suanwang up` end to end: the real binary on a free port with its own
//! data and config directories, and every file in `examples/` submitted to
//! its demo network through the CLI it signed in. Batch and gang jobs must
//! succeed, services must reach running (then they are cancelled); a job
//! that waits is explained with `site/pool` names; the demo's virtual
//! accelerators and HPC nodes bill no SCU. SIGINT stops it all.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long `up` may take to come up (migrations, five agents).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one example may take, placed to finished, on a busy machine.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `suanwang up`. Drop stops it with SIGINT (its agents stop their
/// tasks), and kills it if it does not end.
struct Up {
    child: Option<Child>,
    dir: tempfile::TempDir,
    base: String,
    log: Arc<Mutex<String>>,
}

fn suanwang(config_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_suanwang"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SUANWANG_") {
            command.env_remove(name);
        }
    }
    command.env("SUANWANG_CONFIG_DIR", config_dir);
    command
}

impl Up {
    fn start() -> Up {
        let dir = tempfile::Builder::new()
            .prefix("suanwang-up-it-")
            .tempdir()
            .expect("a temporary directory");
        let mut child = suanwang(&dir.path().join("cli"))
            .arg("up")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("SUANWANG_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn suanwang up");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let stderr_log = log.clone();
        std::thread::spawn(move || {
            let mut stderr = stderr;
            let mut buffer = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                stderr_log
                    .lock()
                    .expect("log lock")
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        // stdout: the "is up" line carries the address; the output ends
        // with "Ctrl-C stops everything." once the agents are started.
        let stdout = child.stdout.take().expect("stdout piped");
        let (ready, readiness) = mpsc::channel();
        let stdout_log = log.clone();
        std::thread::spawn(move || {
            let mut base = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("suanwang is up: API ") {
                    base = rest.split_whitespace().next().map(str::to_owned);
                }
                if line.starts_with("Ctrl-C stops everything") {
                    let _ = ready.send(base.clone());
                }
                let mut log = stdout_log.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut up = Up {
            child: Some(child),
            dir,
            base: String::new(),
            log,
        };
        match readiness.recv_timeout(START_TIMEOUT) {
            Ok(Some(base)) => up.base = base,
            other => panic!("suanwang up did not come up ({other:?}):\n{}", up.log()),
        }
        up
    }

    fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The CLI, signed in by `up` as the demo tenant.
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let output = suanwang(&self.dir.path().join("cli"))
            .args(args)
            .output()
            .expect("cannot run suanwang");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let (ok, stdout, stderr) = self.cli(&all);
        assert!(ok, "suanwang {args:?} failed:\n{stdout}\n{stderr}");
        serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("suanwang {args:?}: {error}: {stdout}"))
    }

    /// SIGINT, then the exit status (None if it had to be killed).
    fn interrupt(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let status = self.interrupt();
        if std::thread::panicking() || std::env::var_os("SUANWANG_IT_SERVER_LOG").is_some() {
            eprintln!("--- suanwang up ({status:?})\n{}", self.log());
        }
    }
}

/// Every file in `examples/`, sorted: a new example is covered by itself.
fn example_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn count(job: &Value, state: &str) -> u64 {
    job["tasks"][state].as_u64().unwrap_or(0)
}

/// The job's usage records (every page).
fn usage(up: &Up, id: &str) -> Vec<Value> {
    let value = up.cli_json(&["job", "usage", id]);
    let records = value.get("usage").unwrap_or(&value);
    records.as_array().cloned().unwrap_or_default()
}

#[test]
fn every_example_runs_on_the_demo_network() {
    let started = Instant::now();
    let mut up = Up::start();
    let output = up.log();
    // What `up` says about its virtual pools is true of each of them.
    assert!(
        output.contains("virtual accelerators: up drives no real accelerator or HPC node"),
        "{output}"
    );
    for pool in [
        "qingpu-dc/gpu-nvidia",
        "guian-dc/gpu-ascend",
        "zhongwei-dc/hpc-x86",
    ] {
        let line = output
            .lines()
            .find(|line| line.trim_start().starts_with(pool))
            .unwrap_or_else(|| panic!("up lists {pool}:\n{output}"));
        assert!(line.contains("(virtual)"), "{line}");
    }

    // The money commands work from the first minute: the market lists the
    // demo pools with prices, a quote of the render says where and for how
    // much, and the demo tenant's wallet holds what `up` put in it.
    // (Each agent registers its site's pools as it starts.)
    let asked = Instant::now();
    let mut market = up.cli_json(&["market"]);
    while market.as_array().map_or(0, Vec::len) < 7 && asked.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(250));
        market = up.cli_json(&["market"]);
    }
    let pools = market.as_array().expect("a list");
    for pool in [
        "guian-dc/cpu",
        "qingpu-dc/gpu-nvidia",
        "zhongwei-dc/hpc-x86",
    ] {
        let (site, name) = pool.split_once('/').unwrap();
        let found = pools
            .iter()
            .find(|p| p["site_name"] == site && p["pool_name"] == name)
            .unwrap_or_else(|| panic!("the market lists {pool}: {market:#}"));
        assert!(
            found["list_micro_yuan_per_unit_hour"].as_i64() > Some(0),
            "{found}"
        );
    }
    let render_file = example_files()
        .into_iter()
        .find(|f| f.ends_with("render.toml"))
        .expect("examples/render.toml");
    let quote = up.cli_json(&["job", "quote", render_file.to_str().unwrap()]);
    // On a small machine the CPU pools hold a wave of frames, not all 24:
    // the rest would wait, and the quote says why.
    let placed = quote["tasks_placed"].as_u64().expect("tasks_placed");
    assert!(
        placed > 0 && placed <= quote["tasks"].as_u64().unwrap(),
        "{quote:#}"
    );
    assert!(
        placed == quote["tasks"].as_u64().unwrap() || quote["why"].is_string(),
        "{quote:#}"
    );
    assert!(quote["total_micro_yuan"].as_i64() > Some(0), "{quote:#}");
    assert!(!quote["lines"].as_array().unwrap().is_empty(), "{quote:#}");
    let wallet = up.cli_json(&["wallet", "show"]);
    assert_eq!(
        wallet["balance_micro_yuan"], 100_000_000_000_i64,
        "{wallet}"
    );
    let (ok, _, stderr) = up.cli(&["--profile", "provider", "earnings", "show"]);
    assert!(ok, "{stderr}");

    // Submit every example at once, as a user trying them all would.
    let files = example_files();
    assert!(files.len() >= 6, "{files:?}");
    let mut jobs = Vec::new();
    for file in &files {
        let path = file.to_str().expect("a UTF-8 path");
        let job = up.cli_json(&["job", "submit", path]);
        let id = job["id"].as_str().expect("a job id").to_owned();
        let kind = job["spec"]["kind"].as_str().expect("a kind").to_owned();
        let tasks = job["spec"]["tasks"].as_u64().expect("tasks");
        jobs.push((
            file.file_name().unwrap().to_string_lossy().into_owned(),
            id,
            kind,
            tasks,
        ));
    }

    // A job outbid everywhere waits, and `job why` names the pool it
    // wanted as site/pool. (Only the demo NVIDIA pool is within 10 ms of
    // Shanghai; the Ascend cards in Gui'an are 12 ms away.)
    let underbid = up.dir.path().join("underbid.json");
    let mut spec = jobs_spec(&up, &jobs, "inference.toml");
    spec["name"] = "underbid-inference".into();
    spec["bid_yuan_per_unit_hour"] = 1.0.into();
    std::fs::write(&underbid, spec.to_string()).unwrap();
    let waiting = up.cli_json(&["job", "submit", underbid.to_str().unwrap()]);
    let waiting = waiting["id"].as_str().unwrap().to_owned();

    let give_up = Instant::now() + JOB_TIMEOUT;
    let mut open: Vec<&(String, String, String, u64)> = jobs.iter().collect();
    while !open.is_empty() {
        assert!(
            Instant::now() < give_up,
            "examples not done in {JOB_TIMEOUT:?}: {:?}",
            open.iter()
                .map(|(name, id, _, _)| (name, up.cli_json(&["job", "get", id])))
                .collect::<Vec<_>>()
        );
        let mut still = Vec::new();
        for job in open {
            let (name, id, kind, tasks) = job;
            let view = up.cli_json(&["job", "get", id]);
            let state = view["state"].as_str().unwrap_or_default();
            assert!(
                !matches!(state, "failed" | "cancelled"),
                "{name} ended {state}: {view}\n{}",
                up.cli(&["job", "tasks", id]).1
            );
            let done = if kind == "service" {
                count(&view, "running") == *tasks
            } else {
                state == "succeeded"
            };
            if done {
                eprintln!(
                    "{name}: {} after {:?}",
                    if kind == "service" {
                        "running"
                    } else {
                        "succeeded"
                    },
                    started.elapsed()
                );
            } else {
                still.push(job);
            }
        }
        open = still;
        std::thread::sleep(Duration::from_millis(250));
    }

    // Services were only to reach running: cancel them.
    for (name, id, kind, _) in &jobs {
        if kind == "service" {
            let (ok, stdout, stderr) = up.cli(&["job", "cancel", id]);
            assert!(ok, "cancel {name}: {stdout}{stderr}");
        }
    }

    // By now rounds have run on the underbid job; it still waits, and its
    // explanation names the pool as site/pool, never by id.
    let mut why = up.cli_json(&["job", "why", &waiting]);
    let asked = Instant::now();
    while !why["why"]
        .as_str()
        .unwrap_or_default()
        .contains("candidate")
        && asked.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(250));
        why = up.cli_json(&["job", "why", &waiting]);
    }
    assert_eq!(why["state"], "pending", "{why}");
    let text = why["why"].as_str().unwrap_or_default();
    assert!(
        text.contains("the best candidate qingpu-dc/gpu-nvidia needs a bid"),
        "{text}"
    );
    assert!(
        text.contains("guian-dc/gpu-ascend"),
        "the latency filter names what it removed: {text}"
    );
    assert!(!text.contains("pool_"), "opaque pool ids: {text}");
    let (ok, shown, _) = up.cli(&["job", "why", &waiting]);
    assert!(ok && shown.contains("qingpu-dc/gpu-nvidia"), "{shown}");

    // The render wrote every frame, in the sites' output directories.
    let (_, render, _, frames) = jobs
        .iter()
        .find(|(name, ..)| name == "render.toml")
        .expect("examples/render.toml");
    let mut written = 0;
    for site in std::fs::read_dir(up.data().join("sites")).unwrap() {
        let outputs = site.unwrap().path().join("outputs").join(render);
        if let Ok(entries) = std::fs::read_dir(outputs) {
            written += entries
                .filter(|entry| {
                    entry
                        .as_ref()
                        .is_ok_and(|entry| entry.file_name().to_string_lossy().ends_with(".png"))
                })
                .count() as u64;
        }
    }
    assert_eq!(written, *frames);

    // The render's bill: a line per usage record, totalling Σ units × wall
    // time × each attempt's recorded market price, rounded once.
    // (Every frame's last record may follow its final status by a report.)
    let asked = Instant::now();
    let mut records = usage(&up, render);
    while (records.len() as u64) < *frames && asked.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(250));
        records = usage(&up, render);
    }
    let tasks = up.cli_json(&["job", "tasks", render]);
    let bill = up.cli_json(&["bill", "show", "--job", render]);
    let records = usage(&up, render);
    assert!(records.len() as u64 >= *frames, "{records:#?}");
    assert_eq!(bill["lines"].as_array().map(Vec::len), Some(records.len()));
    let mut exact: u128 = 0;
    for record in &records {
        let task = tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["index"] == record["task"])
            .expect("the record's task");
        let price = task["placed"]["price_micro_yuan_per_unit_hour"]
            .as_u64()
            .expect("a price");
        exact += u128::from(record["units"].as_u64().unwrap())
            * u128::from(record["wall_ms"].as_u64().unwrap())
            * u128::from(price);
    }
    assert_eq!(
        bill["totals"]["compute_micro_yuan"].as_u64(),
        Some(((exact * 2 + 3_600_000) / 7_200_000) as u64),
        "{bill:#}"
    );

    // Work on the virtual pools is metered, and rated 0 SCU, unrated.
    for name in ["training.toml", "hpc.toml"] {
        let (_, id, _, _) = jobs.iter().find(|(n, ..)| n == name).expect(name);
        // The last record may follow the final status by a report.
        let mut records = usage(&up, id);
        let asked = Instant::now();
        while records.is_empty() && asked.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(250));
            records = usage(&up, id);
        }
        assert!(!records.is_empty(), "{name} has usage");
        for record in &records {
            let model = record["device_model"].as_str().unwrap_or_default();
            assert!(model.starts_with("demo-virtual-"), "{name}: {record}");
            assert_eq!(record["scu_rated"], false, "{name}: {record}");
            assert_eq!(record["scu_micro_hours"], 0, "{name}: {record}");
        }
    }

    let status = up.interrupt();
    assert!(
        status.is_some_and(|status| status.success()),
        "up did not stop cleanly on SIGINT ({status:?}):\n{}",
        up.log()
    );
    assert!(up.log().contains("stopping: agents first"), "{}", up.log());
    eprintln!("every example ran in {:?}", started.elapsed());
}

/// The spec the server stored for one of the submitted examples.
fn jobs_spec(up: &Up, jobs: &[(String, String, String, u64)], name: &str) -> Value {
    let (_, id, _, _) = jobs.iter().find(|(n, ..)| n == name).expect(name);
    up.cli_json(&["job", "get", id])["spec"].clone()
}
