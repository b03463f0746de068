//! The server is stopped for a minute mid-job (issue 4's acceptance): the
//! agent keeps running its tasks, one of them right through the outage, and
//! spools the reports of those that end; when the server returns (same
//! data, same address) every report arrives once, no task runs twice, and
//! the site is not blamed for the time no server watched its lease.

use std::time::Duration;

use super::{
    check_usage_matches_tasks, check_wall, create_site, free_port, measured_ms, number, sh_job,
    site_toml, wait_healthy, wait_job_tasks, wait_succeeded, Agent, NOW_US,
};
use crate::server::harness::{text, wait_for, Db};

const TASKS: u64 = 3;
/// How long the server stays down.
const OUTAGE: Duration = Duration::from_secs(60);
/// Task 0 runs this long, so it starts before the outage and ends after it.
const LONG_TASK_S: u64 = 70;
const CONFIG: &str = "lease_ttl_s = 3\nround_interval_ms = 200\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_outage_spools_reports() {
    let db = Db::sqlite();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = db.serve_on(CONFIG, &listen).await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let (site, token) = create_site(&provider, "site", "shanghai").await;
    let agent = Agent::start(&db, &server, "site", &token, &site_toml(4, 0.3));
    wait_healthy(&provider, &site).await;

    let script = format!(
        "f=\"$SUANWANG_OUTPUT_DIR/t-$SUANWANG_TASK_INDEX\"; echo \"start {NOW_US}\" >> \"$f\"; \
         if [ \"$SUANWANG_TASK_INDEX\" = 0 ]; then sleep {LONG_TASK_S}; else sleep 2; fi; \
         echo \"end {NOW_US}\" >> \"$f\""
    );
    let job = text(
        &tenant.api.submit(&sh_job("outage", TASKS, &script)).await,
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
    server.kill();
    let down_at = std::time::Instant::now();

    // The short tasks end while the server is away; their reports wait in
    // the agent's outbox. Task 0 keeps running.
    wait_for("the final reports spooled", Duration::from_secs(15), || {
        let state = agent.state();
        async move {
            let finals = state["outbox"]["statuses"]
                .as_array()
                .map(|s| s.iter().filter(|s| s["state"] == "succeeded").count())
                .unwrap_or(0);
            let usage = state["outbox"]["usage"].as_array().map_or(0, Vec::len);
            (finals as u64 == TASKS - 1 && usage as u64 == TASKS - 1).then_some(())
        }
    })
    .await;
    // Down for many leases: only the new leader's grace saves the site.
    if let Some(left) = OUTAGE.checked_sub(down_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    assert!(agent.log().contains("reports spooled"), "{}", agent.log());
    let long = agent.outputs(&job).join("t-0");
    let text = std::fs::read_to_string(&long).expect("task 0's file");
    assert!(
        text.contains("start") && !text.contains("end"),
        "task 0 still runs when the server returns: {text:?}"
    );

    let server = db.serve_on(CONFIG, &listen).await;
    assert_eq!(server.base, format!("http://{listen}"));
    let view = wait_succeeded(&tenant.api, &job, Duration::from_secs(45)).await;
    assert_eq!(view["tasks"]["succeeded"], TASKS, "{view}");
    wait_for("the outbox empty", Duration::from_secs(10), || {
        let state = agent.state();
        async move {
            let empty = |field: &str| state["outbox"][field].as_array().is_some_and(Vec::is_empty);
            (empty("statuses") && empty("usage")).then_some(())
        }
    })
    .await;

    let tasks = tenant.api.tasks(&job).await;
    assert!(
        tasks
            .iter()
            .all(|t| t["attempt"] == 1 && t["site"] == site.as_str()),
        "no task ran again: {tasks:#?}"
    );
    let events = tenant.api.events(&job).await;
    assert!(
        events.iter().all(|e| e["kind"] != "lost"),
        "the site was blamed for the outage: {events:#?}"
    );
    for index in 0..TASKS {
        for kind in ["running", "succeeded"] {
            let n = events
                .iter()
                .filter(|e| e["kind"] == kind && e["task"] == index)
                .count();
            assert_eq!(n, 1, "{kind} events of task {index}: {events:#?}");
        }
    }
    let records = super::usage(&tenant.api, &job).await;
    let by = check_usage_matches_tasks(&tasks, &records);
    // Task 0 ran past the usage interval (60 s): metered as it ran, its
    // interim record spooled through the outage like the rest.
    assert!(number(&by[&(0, 1)], "records") >= 2, "{records:#?}");
    for task in &tasks {
        let index = number(task, "index");
        let file = agent.outputs(&job).join(format!("t-{index}"));
        let text = std::fs::read_to_string(&file).expect("the task's file");
        assert_eq!(text.matches("start").count(), 1, "ran once: {text:?}");
        check_wall(&by[&(index, 1)], measured_ms(&file));
    }
    let site_view = provider
        .api
        .get(&format!("/v1/sites/{site}"))
        .await
        .expect(200);
    assert_eq!(site_view["healthy"], true, "{site_view}");
}
