//! kill -9 an agent, not its tasks, and start it again on the same state
//! directory within the lease: it finds the tasks it started still running
//! (or ended), does not start them again, and reports how they ended.

use std::time::Duration;

use super::{
    check_usage_matches_tasks, check_wall, create_site, measured_ms, number, sh_job, site_toml,
    wait_healthy, wait_job_tasks, wait_succeeded, Agent, NOW_US,
};
use crate::server::harness::{text, Db};

const TASKS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_restart_finds_running_tasks() {
    let db = Db::sqlite();
    let server = db
        .serve_with("lease_ttl_s = 10\nround_interval_ms = 200\n")
        .await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let (site, token) = create_site(&provider, "site", "shanghai").await;
    let mut agent = Agent::start(&db, &server, "site", &token, &site_toml(4, 0.3));
    wait_healthy(&provider, &site).await;

    let script = format!(
        "f=\"$SUANWANG_OUTPUT_DIR/t-$SUANWANG_TASK_INDEX\"; echo \"start {NOW_US}\" >> \"$f\"; \
         sleep 3; echo \"end {NOW_US}\" >> \"$f\""
    );
    let job = text(
        &tenant.api.submit(&sh_job("restart", TASKS, &script)).await,
        "id",
    );
    wait_job_tasks(
        &tenant.api,
        &job,
        "tasks running",
        Duration::from_secs(15),
        |tasks| tasks.iter().all(|t| t["state"] == "running"),
    )
    .await;
    agent.kill();
    let killed_at = std::time::Instant::now();
    agent.restart();

    let view = wait_succeeded(&tenant.api, &job, Duration::from_secs(20)).await;
    assert_eq!(view["tasks"]["succeeded"], TASKS, "{view}");
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "done within the lease"
    );
    let tasks = tenant.api.tasks(&job).await;
    assert!(
        tasks
            .iter()
            .all(|t| t["attempt"] == 1 && t["site"] == site.as_str() && t["exit_code"] == 0),
        "{tasks:#?}"
    );
    let events = tenant.api.events(&job).await;
    assert!(events.iter().all(|e| e["kind"] != "lost"), "{events:#?}");
    for index in 0..TASKS {
        let n = events
            .iter()
            .filter(|e| e["kind"] == "succeeded" && e["task"] == index)
            .count();
        assert_eq!(n, 1, "succeeded events of task {index}: {events:#?}");
    }
    let records = super::usage(&tenant.api, &job).await;
    let by = check_usage_matches_tasks(&tasks, &records);
    for task in &tasks {
        let index = number(task, "index");
        let file = agent.outputs(&job).join(format!("t-{index}"));
        let text = std::fs::read_to_string(&file).expect("the task's file");
        assert_eq!(text.lines().count(), 2, "one start, one end: {text:?}");
        assert_eq!(text.matches("start").count(), 1, "started once: {text:?}");
        let record = &by[&(index, 1)];
        assert!(number(record, "wall_ms") >= 3000, "{record}");
        check_wall(record, measured_ms(&file));
    }
    // One work directory per task: the first attempt's.
    let work = agent.state_dir.join("work").join(&job);
    let started = std::fs::read_dir(&work).expect("work directory").count();
    assert_eq!(started as u64, TASKS);
}
