//! One report the server refuses never blocks the reports behind it. The
//! agent's outbox starts with reports the real server turns down: a status
//! it refuses with 422 (`statuses[0].task`: a task index past what the
//! database keeps, as a buggy agent might have queued) and a usage record of a
//! pool the site does not have (answered `rejected`). The agent drops each
//! of them, saying why, and the reports of a job run after them arrive:
//! the job succeeds with its usage counted once.

use std::time::Duration;

use serde_json::json;

use super::{
    check_usage_matches_tasks, create_site, sh_job, site_toml, usage, wait_healthy, wait_succeeded,
    Agent,
};
use crate::server::harness::{text, wait_for, Db};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_report_does_not_block_the_others() {
    let db = Db::sqlite();
    let server = db.serve_with("round_interval_ms = 200\n").await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let (site, token) = create_site(&provider, "refused", "shanghai").await;

    // What a previous run of the agent left in its outbox.
    let state_dir = db.dir().join("refused-state");
    std::fs::create_dir_all(&state_dir).expect("state directory");
    let stale_job = "job_0000000000000000000000000000";
    let outbox = json!({
        "attempts": [],
        "outbox": {
            "statuses": [
                {"job": stale_job, "task": 9_223_372_036_854_775_808_u64, "attempt": 1,
                 "state": "succeeded"},
            ],
            "usage": [
                {"job": stale_job, "task": 0, "attempt": 1, "seq": 0,
                 "pool": "pool_not_of_this_site", "units": 1, "wall_ms": 1000},
            ],
        },
    });
    std::fs::write(state_dir.join("state.json"), outbox.to_string()).expect("state.json");

    let agent = Agent::start(&db, &server, "refused", &token, &site_toml(2, 0.3));
    wait_healthy(&provider, &site).await;
    let job = text(
        &tenant.api.submit(&sh_job("behind", 2, "sleep 0.5")).await,
        "id",
    );
    let view = wait_succeeded(&tenant.api, &job, Duration::from_secs(30)).await;
    assert_eq!(view["tasks"]["succeeded"], 2, "{view}");
    let tasks = tenant.api.tasks(&job).await;
    check_usage_matches_tasks(&tasks, &usage(&tenant.api, &job).await);

    wait_for("the outbox empty", Duration::from_secs(10), || {
        let state = agent.state();
        async move {
            let empty = |field: &str| state["outbox"][field].as_array().is_some_and(Vec::is_empty);
            (empty("statuses") && empty("usage")).then_some(())
        }
    })
    .await;
    let log = agent.log();
    let refused = log
        .lines()
        .find(|line| line.contains("status report refused by the server; dropped"))
        .unwrap_or_else(|| panic!("the refused status is not logged:\n{log}"));
    assert!(
        refused.contains("422")
            && refused.contains("statuses[0].task")
            && refused.contains(stale_job),
        "the log names the item and the server's reason: {refused}"
    );
    let rejected = log
        .lines()
        .find(|line| line.contains("usage record rejected by the server; dropped"))
        .unwrap_or_else(|| panic!("the rejected usage record is not logged:\n{log}"));
    assert!(rejected.contains(stale_job), "{rejected}");
}
