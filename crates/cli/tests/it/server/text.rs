//! The CLI's text output as people read it, snapshot-tested: `job tasks`,
//! `job usage` and `meter usage` name the site (with its region) and the
//! pool, where `--output json` keeps the ids. And every command ends
//! quietly when its output is closed (`suanwang job tasks ID | head -1`).

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::harness::{array, cpu_pool, hello, text, Db, Server, Site};

/// `text` with the run's ids (a job, a site, a pool) replaced by stable
/// names, so a snapshot holds only what every run prints.
fn redact(text: &str, ids: &[(&str, &str)]) -> String {
    ids.iter()
        .fold(text.to_owned(), |text, (id, name)| text.replace(id, name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_and_usage_name_sites_and_pools() {
    let db = Db::sqlite();
    let server = db.serve_with("round_interval_ms = 200\n").await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let site = server.site(&provider, "sh-01", "shanghai").await;
    let mut pool = cpu_pool("cpu-epyc", 8, 0.5);
    pool["device_model"] = json!("amd-epyc-9654");
    let view = site.put_pools(json!([pool])).await;
    let pool_id = text(&view["pools"][0], "id");
    site.heartbeat().await;

    let mut job = hello("named");
    job["tasks"] = json!(3);
    let job_id = text(&tenant.api.submit(&job).await, "id");
    let tasks = tenant
        .api
        .wait_tasks(&job_id, "all 3 tasks placed", |task| {
            task["state"] == "placed"
        })
        .await;
    run_and_report(&site, &job_id, &tasks).await;

    let ids = [
        (job_id.as_str(), "JOB"),
        (site.id.as_str(), "SITE_ID"),
        (pool_id.as_str(), "POOL_ID"),
    ];
    for (name, args) in [
        ("job_tasks_text", vec!["job", "tasks", &job_id]),
        ("job_usage_text", vec!["job", "usage", &job_id]),
        ("meter_usage_text", vec!["meter", "usage", "--job", &job_id]),
    ] {
        let run = server.cli(&tenant.token, &args).await.expect(0);
        assert!(
            !run.stdout.contains(&site.id) && !run.stdout.contains(&pool_id),
            "names, not ids, in {args:?}:\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("sh-01/cpu-epyc in shanghai"),
            "{args:?}:\n{}",
            run.stdout
        );
        insta::assert_snapshot!(name, redact(&run.stdout, &ids));
    }

    // JSON keeps the ids (and has the names beside them).
    let tasks = array(
        server
            .cli(
                &tenant.token,
                &["job", "tasks", &job_id, "--output", "json"],
            )
            .await
            .expect(0)
            .json(),
    );
    assert_eq!(tasks.len(), 3);
    for task in &tasks {
        assert_eq!(task["site"], site.id.as_str(), "{task}");
        assert_eq!(task["pool"], pool_id.as_str(), "{task}");
        assert_eq!(task["site_name"], "sh-01", "{task}");
        assert_eq!(task["site_region"], "shanghai", "{task}");
        assert_eq!(task["pool_name"], "cpu-epyc", "{task}");
    }
    let usage = array(
        server
            .cli(
                &tenant.token,
                &["job", "usage", &job_id, "--output", "json"],
            )
            .await
            .expect(0)
            .json(),
    );
    assert_eq!(usage.len(), 3);
    assert!(
        usage
            .iter()
            .all(|u| u["site"] == site.id.as_str() && u["pool"] == pool_id.as_str()),
        "{usage:#?}"
    );
    let metered = server
        .cli(
            &tenant.token,
            &["meter", "usage", "--job", &job_id, "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    let records = metered["records"].as_array().expect("records");
    assert!(
        records.iter().all(|u| u["pool"] == pool_id.as_str()),
        "{metered}"
    );
}

/// Plays the site's agent: every task of `job` runs and succeeds, with a
/// usage record of 1,500 ms.
async fn run_and_report(site: &Site, job: &str, tasks: &[Value]) {
    let assignments = array(site.assignments().await["assignments"].clone());
    assert_eq!(assignments.len(), tasks.len(), "{assignments:#?}");
    let statuses = |state: &str| -> Vec<Value> {
        assignments
            .iter()
            .map(|a| {
                json!({"job": job, "task": a["task"], "attempt": a["attempt"], "state": state,
                       "exit_code": if state == "succeeded" { json!(0) } else { Value::Null }})
            })
            .collect()
    };
    let usage: Vec<Value> = assignments
        .iter()
        .map(|a| {
            json!({"job": job, "task": a["task"], "attempt": a["attempt"], "seq": 0,
                   "pool": a["pool"], "units": 1, "wall_ms": 1500})
        })
        .collect();
    site.report(json!({ "statuses": statuses("running") }))
        .await;
    site.report(json!({ "statuses": statuses("succeeded"), "usage": usage }))
        .await;
}

/// What a command did when its reader went away after the first line.
#[derive(Debug)]
struct Closed {
    first_line: String,
    code: Option<i32>,
    stderr: String,
}

/// Runs `suanwang ARGS`, reads one line of its output, closes the pipe, and
/// waits for it to end.
fn first_line_then_close(server: Option<(&Server, &str, &Db)>, args: &[&str]) -> Closed {
    let mut command = Command::new(env!("CARGO_BIN_EXE_suanwang"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SUANWANG_") {
            command.env_remove(name);
        }
    }
    if let Some((server, token, db)) = server {
        command
            .env("SUANWANG_CONFIG_DIR", db.dir().join("cli-closed"))
            .env("SUANWANG_SERVER", &server.base)
            .env("SUANWANG_TOKEN", token);
    }
    let mut child = command
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run suanwang {args:?}: {error}"));
    let mut first_line = String::new();
    {
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        stdout.read_line(&mut first_line).expect("a first line");
        // Dropped here: the pipe closes with most of the output unread.
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let status = child.wait().expect("the command ends");
    Closed {
        first_line,
        code: status.code(),
        stderr,
    }
}

#[track_caller]
fn check_quiet(closed: &Closed, args: &[&str]) {
    assert!(!closed.first_line.is_empty(), "{args:?}: {closed:?}");
    assert_eq!(closed.code, Some(0), "{args:?} exits 0: {closed:?}");
    assert!(
        closed.stderr.is_empty(),
        "{args:?} says nothing on a closed pipe (no panic, no backtrace): {}",
        closed.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_output_ends_commands_quietly() {
    // Offline: a generated round is far more than a pipe holds.
    let args = ["place", "gen", "--pools", "500", "--classes", "5000"];
    check_quiet(&first_line_then_close(None, &args), &args);

    // Against a server: 3,000 waiting tasks (no site), several pages.
    let db = Db::sqlite();
    let server = db.serve().await;
    let tenant = server.tenant("acme").await;
    let mut job = hello("many");
    job["tasks"] = json!(3000);
    let job_id = text(&tenant.api.submit(&job).await, "id");
    for args in [
        vec!["job", "tasks", job_id.as_str()],
        vec!["job", "tasks", job_id.as_str(), "--output", "json"],
    ] {
        let closed = tokio::task::block_in_place(|| {
            first_line_then_close(Some((&server, &tenant.token, &db)), &args)
        });
        check_quiet(&closed, &args);
    }
}
