//! Three sites at different list prices, each too small for the whole job:
//! the job's tasks spread over them, every task writes its output once, and
//! its usage is the wall time the process ran.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{
    check_usage_matches_tasks, check_wall, create_site, measured_ms, number, sh_job, site_toml,
    wait_healthy, wait_succeeded, Agent, NOW_US,
};
use crate::server::harness::{text, Db};

const TASKS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_run_a_job_across_sites() {
    let db = Db::sqlite();
    let server = db.serve_with("round_interval_ms = 200\n").await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let mut agents = Vec::new();
    let mut sites = Vec::new();
    for (name, capacity, price) in [("cheap", 2, 0.2), ("middle", 3, 0.4), ("dear", 3, 0.6)] {
        let (id, token) = create_site(&provider, name, "shanghai").await;
        agents.push(Agent::start(
            &db,
            &server,
            name,
            &token,
            &site_toml(capacity, price),
        ));
        sites.push(id);
    }
    for site in &sites {
        wait_healthy(&provider, site).await;
    }

    let script = format!(
        "echo \"start {NOW_US}\" > \"$SUANWANG_OUTPUT_DIR/time-$SUANWANG_TASK_INDEX\"; \
         sleep 0.3; \
         echo $SUANWANG_TASK_INDEX > \"$SUANWANG_OUTPUT_DIR/t-$SUANWANG_TASK_INDEX\"; \
         echo \"end {NOW_US}\" >> \"$SUANWANG_OUTPUT_DIR/time-$SUANWANG_TASK_INDEX\""
    );
    let job = text(
        &tenant.api.submit(&sh_job("spread", TASKS, &script)).await,
        "id",
    );
    let view = wait_succeeded(&tenant.api, &job, Duration::from_secs(30)).await;
    assert_eq!(view["tasks"]["succeeded"], TASKS, "{view}");

    let tasks = tenant.api.tasks(&job).await;
    assert_eq!(tasks.len() as u64, TASKS);
    let used: BTreeSet<&str> = tasks.iter().filter_map(|t| t["site"].as_str()).collect();
    assert!(used.len() > 1, "all tasks ran at one site: {tasks:#?}");
    assert!(
        tasks
            .iter()
            .all(|t| t["attempt"] == 1 && t["exit_code"] == 0),
        "{tasks:#?}"
    );

    // `suanwang job usage`: one record per task, of its only attempt.
    let records = server
        .cli(&tenant.token, &["job", "usage", &job, "--output", "json"])
        .await
        .expect(0)
        .json();
    let records = records.as_array().expect("a list").clone();
    let by = check_usage_matches_tasks(&tasks, &records);
    assert_eq!(by.len() as u64, TASKS);

    for task in &tasks {
        let index = number(task, "index");
        let site = task["site"].as_str().expect("a site");
        let agent = &agents[sites.iter().position(|s| s == site).expect("a known site")];
        let outputs = agent.outputs(&job);
        let output = std::fs::read_to_string(outputs.join(format!("t-{index}")))
            .unwrap_or_else(|error| panic!("output of task {index} at {site}: {error}"));
        assert_eq!(output, format!("{index}\n"));
        // Not also at another site.
        for other in agents.iter().filter(|a| a.outputs(&job) != outputs) {
            assert!(!other.outputs(&job).join(format!("t-{index}")).exists());
        }
        let measured = measured_ms(&outputs.join(format!("time-{index}")));
        let record = &by[&(index, 1)];
        let wall = number(record, "wall_ms");
        // The agent's end is the exit file's mtime, which the kernel's
        // coarse file clock may put a tick early (see `check_wall`).
        assert!(
            (290..=2000).contains(&wall),
            "wall time of a 0.3 s task: {record}"
        );
        check_wall(record, measured);
    }

    // The bill: one line per usage record, at the price each attempt was
    // placed at; its total is Σ units × wall time × price, rounded once.
    let bill = server
        .cli(
            &tenant.token,
            &["bill", "show", "--job", &job, "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    let lines = bill["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), records.len(), "{bill:#}");
    let mut exact: u128 = 0;
    for record in &records {
        let task = tasks
            .iter()
            .find(|t| t["index"] == record["task"])
            .expect("the record's task");
        let price = task["placed"]["price_micro_yuan_per_unit_hour"]
            .as_u64()
            .expect("a placed price") as u128;
        exact +=
            u128::from(number(record, "units")) * u128::from(number(record, "wall_ms")) * price;
        let line = lines
            .iter()
            .find(|l| l["task"] == record["task"] && l["seq"] == record["seq"])
            .expect("a line per record");
        assert_eq!(line["wall_ms"], record["wall_ms"], "{line}");
        assert_eq!(
            line["price_micro_yuan_per_unit_hour"].as_u64(),
            Some(price as u64)
        );
    }
    let rounded = (exact * 2 + 3_600_000) / 7_200_000;
    assert_eq!(
        bill["totals"]["compute_micro_yuan"].as_u64(),
        Some(rounded as u64),
        "{bill:#}"
    );
    assert_eq!(
        bill["totals"]["total_micro_yuan"],
        bill["totals"]["compute_micro_yuan"]
    );
    // CSV: a header and one row per line.
    let csv = server
        .cli(
            &tenant.token,
            &["bill", "show", "--job", &job, "--output", "csv"],
        )
        .await
        .expect(0);
    assert_eq!(
        csv.stdout.lines().count(),
        lines.len() + 1,
        "{}",
        csv.stdout
    );
    assert!(csv.stdout.starts_with("site,job,task,"), "{}", csv.stdout);
    let text = server
        .cli(&tenant.token, &["bill", "show", "--job", &job])
        .await
        .expect(0);
    assert!(
        text.stdout.contains(&format!("{} lines", lines.len())),
        "{}",
        text.stdout
    );
    // The provider earns what its pools billed (no platform fee configured).
    let earnings = server
        .cli(&provider.token, &["earnings", "show", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(earnings["fee_bps"], 0, "{earnings}");
    assert_eq!(
        earnings["earned_micro_yuan"], bill["totals"]["compute_micro_yuan"],
        "{earnings:#}"
    );
    let pool_lines: u64 = earnings["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lines"].as_u64().unwrap())
        .sum();
    assert_eq!(pool_lines, lines.len() as u64);
    // The money moved: every hold settled, the wallet charged the bill's
    // total to the micro-yuan, the provider paid it (no fee), nothing held.
    let total = bill["totals"]["total_micro_yuan"]
        .as_i64()
        .expect("a total");
    assert!(total > 0, "{bill:#}");
    let wallet = tenant.api.get("/v1/wallet").await.expect(200);
    assert_eq!(wallet["held_micro_yuan"], 0, "{wallet}");
    assert_eq!(
        wallet["balance_micro_yuan"].as_i64(),
        Some(crate::server::harness::Server::TENANT_WALLET_MICRO - total),
        "{wallet} {bill:#}"
    );
    assert_eq!(
        earnings["settled_micro_yuan"], earnings["earned_micro_yuan"],
        "{earnings:#}"
    );
    let check = server
        .cli(
            &server.operator_token(),
            &["ledger", "check", "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    assert!(
        check["transfers"].as_u64().is_some_and(|n| n > 0),
        "{check}"
    );
    tenant.api.get("/v1/earnings").await.not_found();
    // Another tenant sees no such job.
    let other = server.tenant("other").await;
    other
        .api
        .get(&format!("/v1/bills?job={job}"))
        .await
        .not_found();
    provider.api.get("/v1/bills").await.not_found();
}
