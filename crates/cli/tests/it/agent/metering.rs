//! A running attempt is metered as it runs: with `usage_interval_s = 1` a
//! 3.3 s task reports several usage records (seq 0, 1, ...) that add up to
//! the wall time the process measured itself.

use std::time::Duration;

use super::{
    check_usage_matches_tasks, check_wall, create_site, measured_ms, number, sh_job, site_toml,
    usage, wait_healthy, wait_succeeded, Agent, NOW_US,
};
use crate::server::harness::{text, Db};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_attempts_are_metered_as_they_run() {
    let db = Db::sqlite();
    let server = db.serve_with("round_interval_ms = 200\n").await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let (site, token) = create_site(&provider, "meter", "shanghai").await;
    let config = format!("usage_interval_s = 1\n{}", site_toml(2, 0.3));
    let agent = Agent::start(&db, &server, "meter", &token, &config);
    wait_healthy(&provider, &site).await;

    let script = format!(
        "f=\"$SUANWANG_OUTPUT_DIR/t-$SUANWANG_TASK_INDEX\"; echo \"start {NOW_US}\" > \"$f\"; \
         sleep 3.3; echo \"end {NOW_US}\" >> \"$f\""
    );
    let job = text(&tenant.api.submit(&sh_job("meter", 1, &script)).await, "id");
    wait_succeeded(&tenant.api, &job, Duration::from_secs(30)).await;
    let tasks = tenant.api.tasks(&job).await;
    let records = usage(&tenant.api, &job).await;
    assert!(
        records.len() >= 3,
        "interim records of a 3.3 s task: {records:#?}"
    );
    let by = check_usage_matches_tasks(&tasks, &records);
    let whole = &by[&(0, 1)];
    assert_eq!(number(whole, "records"), records.len() as u64);
    check_wall(whole, measured_ms(&agent.outputs(&job).join("t-0")));
}
