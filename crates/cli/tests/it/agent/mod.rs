//! Agents end to end: the real `suanwang serve` and several real
//! `suanwang agent` processes, each with its own site file and state
//! directory, running tasks through the process executor. Killed agents,
//! a killed server and restarts: every task runs to the end once, and its
//! usage is counted once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::server::harness::{text, wait_for, Api, Db, Principal, Server};

mod killed;
mod metering;
mod outage;
mod refused;
mod restart;
mod spread;

/// A running `suanwang agent` process, killed (SIGKILL) on drop. The tasks
/// it started live in their own process groups and outlive it.
#[derive(Debug)]
pub struct Agent {
    name: String,
    child: Option<Child>,
    server: String,
    token: String,
    config: PathBuf,
    pub state_dir: PathBuf,
    log: Arc<Mutex<String>>,
}

fn drain(stream: impl std::io::Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut stream = stream;
        let mut buffer = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            log.lock()
                .expect("log lock")
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
}

impl Agent {
    /// Starts `suanwang agent` for the site whose token is `token`, with a
    /// site file `NAME.toml` and the state directory `NAME-state` in the
    /// deployment's directory.
    pub fn start(db: &Db, server: &Server, name: &str, token: &str, site_toml: &str) -> Agent {
        let config = db.file(&format!("{name}.toml"), site_toml);
        let mut agent = Agent {
            name: name.to_owned(),
            child: None,
            server: server.base.clone(),
            token: token.to_owned(),
            config,
            state_dir: db.dir().join(format!("{name}-state")),
            log: Arc::new(Mutex::new(String::new())),
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "agent {} already runs", self.name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_suanwang"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SUANWANG_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .arg("agent")
            .arg("--server")
            .arg(&self.server)
            .arg("--token")
            .arg(&self.token)
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .env("SUANWANG_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn suanwang agent");
        {
            let mut log = self.log.lock().expect("log lock");
            log.push_str(&format!("--- agent {} started\n", self.name));
        }
        drain(child.stdout.take().expect("stdout piped"), self.log.clone());
        drain(child.stderr.take().expect("stderr piped"), self.log.clone());
        self.child = Some(child);
    }

    /// kill -9, and reap it; its tasks go on.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.log
                .lock()
                .expect("log lock")
                .push_str(&format!("--- agent {} killed\n", self.name));
        }
    }

    /// Starts it again with the same site file and state directory.
    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// The agent's durable state (`state.json`); null before it exists.
    pub fn state(&self) -> Value {
        match std::fs::read_to_string(self.state_dir.join("state.json")) {
            Ok(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// Where the tasks of `job` write their outputs.
    pub fn outputs(&self, job: &str) -> PathBuf {
        self.state_dir.join("outputs").join(job)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() || std::env::var_os("SUANWANG_IT_SERVER_LOG").is_some() {
            eprintln!("--- log of agent {}\n{}", self.name, self.log());
        }
    }
}

/// A site file with one CPU pool named `cpu`.
pub fn site_toml(capacity: u64, price: f64) -> String {
    format!(
        "executor = \"process\"\nstop_grace_s = 1\n\n[[pools]]\nname = \"cpu\"\nkind = \"cpu\"\n\
         family = \"x86\"\ndevice_model = \"test-cpu\"\ncapacity = {capacity}\n\
         price_yuan_per_unit_hour = {price:?}\n"
    )
}

/// A site of `provider`: its id and its agent's token.
pub async fn create_site(provider: &Principal, name: &str, region: &str) -> (String, String) {
    let created = provider
        .api
        .post("/v1/sites", json!({ "name": name, "region": region }))
        .await
        .expect(201);
    (text(&created, "id"), text(&created, "token"))
}

/// Waits until the site's agent has registered and holds a lease.
pub async fn wait_healthy(provider: &Principal, site: &str) {
    let api = provider.api.clone();
    let path = format!("/v1/sites/{site}");
    wait_for(
        &format!("site {site} healthy"),
        Duration::from_secs(20),
        || {
            let api = api.clone();
            let path = path.clone();
            async move {
                let view = api.get(&path).await.expect(200);
                (view["healthy"] == true && view["pools"].as_array().is_some_and(|p| !p.is_empty()))
                    .then_some(())
            }
        },
    )
    .await;
}

/// A batch job of `tasks` tasks running `bash -c script`, one CPU each
/// (bash for `NOW_US`: a clock read without a fork, so a task's own
/// measure of its run time is close to its process's).
pub fn sh_job(name: &str, tasks: u64, script: &str) -> Value {
    json!({
        "name": name,
        "kind": "batch",
        "tasks": tasks,
        "hours": 0.01,
        "bid_yuan_per_unit_hour": 2.0,
        "origin": "shanghai",
        "resources": { "kind": "cpu", "units": 1 },
        "run": { "command": "bash", "args": ["-c", script] },
    })
}

/// Microseconds since the epoch, in bash.
pub const NOW_US: &str = "${EPOCHREALTIME/./}";

/// Polls the job until `done` holds for its tasks; the tasks.
pub async fn wait_job_tasks(
    api: &Api,
    job: &str,
    what: &str,
    limit: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let done = &done;
    wait_for(what, limit, || {
        let api = api.clone();
        let job = job.to_owned();
        async move {
            let tasks = api.tasks(&job).await;
            (!tasks.is_empty() && done(&tasks)).then_some(tasks)
        }
    })
    .await
}

/// Waits until the job has succeeded; its final view.
pub async fn wait_succeeded(api: &Api, job: &str, limit: Duration) -> Value {
    wait_for(&format!("job {job} succeeded"), limit, || {
        let api = api.clone();
        let job = job.to_owned();
        async move {
            let view = api.job(&job).await;
            assert!(
                !matches!(view["state"].as_str(), Some("failed" | "cancelled")),
                "the job ended badly: {view}\n{:#?}",
                api.tasks(&job).await
            );
            (view["state"] == "succeeded").then_some(view)
        }
    })
    .await
}

pub async fn usage(api: &Api, job: &str) -> Vec<Value> {
    api.usage(job).await
}

#[track_caller]
pub fn number(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number in {value}"))
}

/// Usage records by (task, attempt); fails on a second record of one.
#[track_caller]
pub fn usage_by_attempt(records: &[Value]) -> BTreeMap<(u64, u64), Value> {
    // An attempt's records: interim ones while it ran, then its last; their
    // seqs are 0, 1, ... with no gap or repeat, and they add up.
    let mut parts: BTreeMap<(u64, u64), Vec<&Value>> = BTreeMap::new();
    for record in records {
        let key = (number(record, "task"), number(record, "attempt"));
        parts.entry(key).or_default().push(record);
    }
    parts
        .into_iter()
        .map(|(key, mut parts)| {
            parts.sort_by_key(|r| number(r, "seq"));
            let seqs: Vec<u64> = parts.iter().map(|r| number(r, "seq")).collect();
            let expected: Vec<u64> = (0..parts.len() as u64).collect();
            assert_eq!(
                seqs, expected,
                "usage records of task {} attempt {}: {parts:#?}",
                key.0, key.1
            );
            let mut whole = parts[0].clone();
            whole["wall_ms"] = parts
                .iter()
                .map(|r| number(r, "wall_ms"))
                .sum::<u64>()
                .into();
            whole["records"] = parts.len().into();
            (key, whole)
        })
        .collect()
}

/// Σ units × wall_ms over the records.
pub fn unit_ms(records: &[Value]) -> u64 {
    records
        .iter()
        .map(|r| number(r, "units") * number(r, "wall_ms"))
        .sum()
}

/// Checks the usage of a finished job: one record per task, of the
/// attempt that succeeded, at the site that ran it; none else.
#[track_caller]
pub fn check_usage_matches_tasks(
    tasks: &[Value],
    records: &[Value],
) -> BTreeMap<(u64, u64), Value> {
    let by = usage_by_attempt(records);
    let expected: BTreeSet<(u64, u64)> = tasks
        .iter()
        .map(|t| (number(t, "index"), number(t, "attempt")))
        .collect();
    let got: BTreeSet<(u64, u64)> = by.keys().copied().collect();
    assert_eq!(
        got, expected,
        "usage records vs final attempts\n{records:#?}\n{tasks:#?}"
    );
    for task in tasks {
        let record = &by[&(number(task, "index"), number(task, "attempt"))];
        assert_eq!(record["site"], task["site"], "{record} vs {task}");
        assert_eq!(record["units"], 1, "{record}");
    }
    by
}

/// The wall time in milliseconds a task measured itself: from the first
/// `start US` to the first `end US` line of `file`.
#[track_caller]
pub fn measured_ms(file: &Path) -> u64 {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
    let stamp = |word: &str| -> u64 {
        text.lines()
            .filter_map(|line| line.strip_prefix(word))
            .map(|ms| {
                ms.trim()
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("bad line in {}: {text:?}", file.display()))
            })
            .next()
            .unwrap_or_else(|| panic!("no {word:?} line in {}: {text:?}", file.display()))
    };
    stamp("end ").saturating_sub(stamp("start ")) / 1000
}

/// Usage metered by the agent covers what the process measured of itself
/// and adds only the start of the attempt: the agent's clock starts before
/// the wrapper shell enters the attempt's cgroup and stops at the exit
/// file's mtime, so the record is never shorter than the task's own measure
/// (less the kernel's coarse file-time tick) and longer by at most 2 % or
/// 250 ms, the start of a shell on a loaded 2-core CI machine.
#[track_caller]
pub fn check_wall(record: &Value, measured: u64) {
    const TICK_MS: u64 = 10;
    let wall = number(record, "wall_ms");
    let start = (measured / 50).max(250);
    assert!(
        wall + TICK_MS >= measured && wall <= measured + start,
        "usage {wall} ms vs {measured} ms measured by the task: {record}"
    );
}

/// A free TCP port on 127.0.0.1 (free when asked; a server binds it next).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}
