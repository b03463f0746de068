//! The market and quotes over HTTP and through the CLI: every signed-in
//! caller sees the network's pools with list and clearing prices and free
//! capacity; a placed attempt records the price it pays, never above its
//! bid; a quote solves the round with the job added and writes nothing.

use std::time::Duration;

use serde_json::{json, Value};

use super::harness::{cpu_pool, hello, hello_path, text, wait_for, Db};

both_backends!(
    market_and_quote,
    market_and_quote_sqlite,
    market_and_quote_postgres
);

fn micro(value: &Value, field: &str) -> i64 {
    value[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer: {value}"))
}

async fn market_and_quote(db: Db) {
    let server = db.serve_with("round_interval_ms = 200\n").await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let west = server.site(&provider, "gy-01", "guian").await;
    west.put_pools(json!([cpu_pool("cpu", 8, 0.3)])).await;
    west.heartbeat().await;
    let east = server.site(&provider, "sh-01", "shanghai").await;
    east.put_pools(json!([cpu_pool("cpu", 4, 0.9)])).await;
    east.heartbeat().await;

    // A tenant sees the whole market (its `site list` stays empty).
    let run = server
        .cli(&tenant.token, &["market", "--output", "json"])
        .await
        .expect(0);
    let pools = run.json();
    let pools = pools.as_array().expect("a list");
    assert_eq!(pools.len(), 2, "{pools:#?}");
    let gy = pools
        .iter()
        .find(|p| p["site_name"] == "gy-01")
        .expect("gy-01");
    assert_eq!(gy["region"], "guian");
    assert_eq!(gy["kind"], "cpu");
    assert_eq!(gy["family"], "x86");
    assert_eq!(gy["device_model"], "test-cpu");
    assert_eq!(micro(gy, "list_micro_yuan_per_unit_hour"), 300_000);
    assert_eq!(
        (gy["capacity_units"].as_u64(), gy["free_units"].as_u64()),
        (Some(8), Some(8))
    );
    assert_eq!(gy["healthy"], true);
    // Filters, each checked by the server.
    let only = |args: &'static [&'static str]| {
        let server = &server;
        let token = tenant.token.clone();
        async move {
            let mut all = vec!["market", "--output", "json"];
            all.extend_from_slice(args);
            server.cli(&token, &all).await.expect(0).json()
        }
    };
    assert_eq!(
        only(&["--region", "guian"]).await.as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        only(&["--kind", "gpu"]).await.as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(
        only(&["--family", "x86"]).await.as_array().map(Vec::len),
        Some(2)
    );
    let bad = server
        .cli(&tenant.token, &["market", "--region", "atlantis"])
        .await
        .expect(2);
    assert!(bad.stderr.contains("region"), "{}", bad.stderr);
    tenant
        .api
        .get("/v1/market?limit=0")
        .await
        .error(400, "bad-query");
    // Pages of one, to the end.
    let page = tenant.api.get("/v1/market?limit=1").await.expect(200);
    assert_eq!(page["pools"].as_array().map(Vec::len), Some(1));
    let next = text(&page, "next");
    let last = tenant
        .api
        .get(&format!("/v1/market?limit=1&after={next}"))
        .await
        .expect(200);
    assert_eq!(last["pools"].as_array().map(Vec::len), Some(1));
    assert_ne!(last["pools"][0]["pool"], page["pools"][0]["pool"]);
    // For people: a table with a header and a total line.
    let table = server.cli(&tenant.token, &["market"]).await.expect(0);
    assert!(table.stdout.starts_with("SITE/POOL"), "{}", table.stdout);
    assert!(table.stdout.contains("gy-01/cpu"), "{}", table.stdout);

    // A quote writes nothing and says where and for how much.
    let quote = server
        .cli(
            &tenant.token,
            &[
                "job",
                "quote",
                hello_path().to_str().unwrap(),
                "--output",
                "json",
            ],
        )
        .await
        .expect(0)
        .json();
    assert_eq!(quote["tasks"], 4);
    assert_eq!(quote["tasks_placed"], 4, "{quote}");
    let mut total = 0;
    for line in quote["lines"].as_array().expect("lines") {
        let tasks = line["tasks"].as_i64().unwrap();
        // hello: 1 unit for 0.01 h (36 s); no data to move.
        let price = micro(line, "price_micro_yuan_per_unit_hour");
        assert!(price <= 1_000_000, "never above the bid: {line}");
        let compute = (tasks * price * 36_000 * 2 + 3_600_000) / (3_600_000 * 2);
        assert_eq!(micro(line, "compute_micro_yuan"), compute, "{line}");
        assert_eq!(micro(line, "transfer_micro_yuan"), 0, "{line}");
        assert_eq!(micro(line, "total_micro_yuan"), compute, "{line}");
        total += compute;
    }
    assert_eq!(micro(&quote, "total_micro_yuan"), total);
    assert!(
        tenant.api.all_jobs().await.is_empty(),
        "a quote submits nothing"
    );
    let text_quote = server
        .cli(
            &tenant.token,
            &["job", "quote", hello_path().to_str().unwrap()],
        )
        .await
        .expect(0);
    assert!(
        text_quote
            .stdout
            .contains("4 of 4 tasks would be placed now"),
        "{}",
        text_quote.stdout
    );
    // Bid below every price: nothing placed, and the engine says why.
    let mut cheap = hello("cheap");
    cheap["bid_yuan_per_unit_hour"] = json!(0.1);
    let quote = tenant.api.post("/v1/jobs/quote", cheap).await.expect(200);
    assert_eq!(quote["tasks_placed"], 0, "{quote}");
    assert!(
        quote["why"].as_str().is_some_and(|why| !why.is_empty()),
        "{quote}"
    );
    // A provider may not quote (tenants submit jobs).
    provider
        .api
        .post("/v1/jobs/quote", hello("x"))
        .await
        .not_found();

    // Placed attempts record what they pay: the pool's market price then.
    let mut job = hello("paid");
    job["run"]["command"] = json!("sleep");
    job["run"]["args"] = json!(["30"]);
    let id = text(&tenant.api.submit(&job).await, "id");
    let tasks = wait_for("4 tasks placed", Duration::from_secs(20), || async {
        let tasks = tenant.api.tasks(&id).await;
        tasks
            .iter()
            .all(|t| t["state"] == "placed")
            .then_some(tasks)
    })
    .await;
    let market = tenant.api.get("/v1/market").await.expect(200);
    for task in &tasks {
        let placed = &task["placed"];
        let price = micro(placed, "price_micro_yuan_per_unit_hour");
        assert_eq!(micro(placed, "bid_micro_yuan_per_unit_hour"), 1_000_000);
        assert!(price <= 1_000_000, "{task}");
        assert!(placed["at_ms"].as_i64().is_some(), "{task}");
        let pool = market["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pool"] == task["pool"])
            .expect("the task's pool is on the market");
        assert!(
            price >= micro(pool, "list_micro_yuan_per_unit_hour"),
            "{task} {pool}"
        );
    }
    // The market has seen a round: clearing prices and the units now held.
    let held: u64 = market["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["capacity_units"].as_u64().unwrap() - p["free_units"].as_u64().unwrap())
        .sum();
    assert_eq!(held, 4);
    for pool in market["pools"].as_array().unwrap() {
        assert!(
            pool["clearing_micro_yuan_per_unit_hour"].as_i64().is_some(),
            "{pool}"
        );
        assert_eq!(
            micro(pool, "market_micro_yuan_per_unit_hour"),
            micro(pool, "list_micro_yuan_per_unit_hour")
                + micro(pool, "clearing_micro_yuan_per_unit_hour"),
        );
    }
}
