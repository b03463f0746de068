//! kill -9 an agent mid-job: its lease lapses, its tasks run elsewhere as
//! new attempts, the job completes, and its late reports are fenced: no
//! usage is counted for the lost attempts, nor twice for any.

use std::time::Duration;

use super::{
    check_usage_matches_tasks, check_wall, create_site, measured_ms, number, sh_job, site_toml,
    unit_ms, usage, wait_healthy, wait_job_tasks, wait_succeeded, Agent, NOW_US,
};
use crate::server::harness::{text, wait_for, Db};

const TASKS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_agent_work_moves_and_usage_counts_once() {
    let db = Db::sqlite();
    let server = db
        .serve_with("lease_ttl_s = 2\nround_interval_ms = 200\n")
        .await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    // A is cheaper: it gets work first.
    let (site_a, token_a) = create_site(&provider, "site-a", "shanghai").await;
    let (site_b, token_b) = create_site(&provider, "site-b", "shanghai").await;
    let mut agent_a = Agent::start(&db, &server, "a", &token_a, &site_toml(2, 0.2));
    let agent_b = Agent::start(&db, &server, "b", &token_b, &site_toml(2, 0.4));
    wait_healthy(&provider, &site_a).await;
    wait_healthy(&provider, &site_b).await;

    let script = format!(
        "f=\"$SUANWANG_OUTPUT_DIR/t-$SUANWANG_TASK_INDEX\"; echo \"start {NOW_US}\" >> \"$f\"; \
         sleep 3; echo \"end {NOW_US}\" >> \"$f\""
    );
    let job = text(
        &tenant.api.submit(&sh_job("moves", TASKS, &script)).await,
        "id",
    );
    let running = wait_job_tasks(
        &tenant.api,
        &job,
        "tasks running at A",
        Duration::from_secs(15),
        |tasks| {
            tasks
                .iter()
                .any(|t| t["state"] == "running" && t["site"] == site_a.as_str())
        },
    )
    .await;
    agent_a.kill();
    let killed_at = std::time::Instant::now();
    let on_a: Vec<u64> = running
        .iter()
        .filter(|t| t["site"] == site_a.as_str())
        .map(|t| number(t, "index"))
        .collect();
    assert!(!on_a.is_empty());

    let view = wait_succeeded(&tenant.api, &job, Duration::from_secs(30)).await;
    assert_eq!(view["tasks"]["succeeded"], TASKS, "{view}");
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "A's tasks cannot have finished elsewhere this soon"
    );
    let tasks = tenant.api.tasks(&job).await;
    for task in &tasks {
        assert_eq!(task["site"], site_b.as_str(), "only B is alive: {task}");
        let moved = on_a.contains(&number(task, "index"));
        assert_eq!(number(task, "attempt"), if moved { 2 } else { 1 }, "{task}");
    }
    let events = tenant.api.events(&job).await;
    let lost: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "lost")
        .map(|e| number(e, "task"))
        .collect();
    let mut lost_sorted = lost.clone();
    lost_sorted.sort_unstable();
    let mut on_a_sorted = on_a.clone();
    on_a_sorted.sort_unstable();
    // A task placed at A but not yet running there when A died is lost too.
    assert!(
        on_a_sorted.iter().all(|i| lost_sorted.contains(i)),
        "lost {lost:?}, on A {on_a:?}: {events:#?}"
    );

    // One record per task, of the attempt that succeeded at B; none of A's.
    let records = usage(&tenant.api, &job).await;
    let by = check_usage_matches_tasks(&tasks, &records);
    assert!(
        records.iter().all(|r| r["site"] == site_b.as_str()),
        "{records:#?}"
    );
    for task in &tasks {
        let index = number(task, "index");
        let record = &by[&(index, number(task, "attempt"))];
        assert!(number(record, "wall_ms") >= 3000, "{record}");
        check_wall(
            record,
            measured_ms(&agent_b.outputs(&job).join(format!("t-{index}"))),
        );
    }
    let total = unit_ms(&records);

    // A comes back with its state: the old attempts ended meanwhile (or are
    // stopped); their reports are answered, rejected as stale; nothing runs
    // again and nothing is counted.
    agent_a.restart();
    wait_for(
        "A's spooled reports answered",
        Duration::from_secs(20),
        || {
            let state = agent_a.state();
            let log = agent_a.log();
            async move {
                let empty =
                    |field: &str| state["outbox"][field].as_array().is_some_and(Vec::is_empty);
                (empty("statuses")
                    && empty("usage")
                    && state["attempts"].as_array().is_some_and(Vec::is_empty)
                    && log.contains("status report rejected"))
                .then_some(())
            }
        },
    )
    .await;
    // Nothing new was started at A: only the first attempts of tasks it
    // held, each of which ran once.
    let work = agent_a.state_dir.join("work").join(&job);
    let started: Vec<String> = std::fs::read_dir(&work)
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    assert!(!started.is_empty(), "A started nothing");
    for name in &started {
        let (index, attempt) = name.split_once('-').expect("TASK-ATTEMPT");
        let index: u64 = index.parse().expect("a task index");
        assert!(
            attempt == "1" && on_a.contains(&index),
            "A started {name}; it held {on_a:?}"
        );
        let file = agent_a.outputs(&job).join(format!("t-{index}"));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(
            text.matches("start").count(),
            1,
            "A ran task {index} once: {text:?}"
        );
    }
    let log = agent_a.log();
    let rejected = log.matches("status report rejected").count();
    assert!(
        rejected >= started.len(),
        "{rejected} rejections of {started:?}\n{log}"
    );
    let after = usage(&tenant.api, &job).await;
    assert_eq!(after.len(), records.len(), "{after:#?}");
    assert_eq!(unit_ms(&after), total);
    assert_eq!(tenant.api.job(&job).await["state"], "succeeded");
}
