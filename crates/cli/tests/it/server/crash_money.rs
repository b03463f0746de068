//! kill -9 while usage is being posted: after a restart on the same data
//! and the site's resending every report, answered or not, every record
//! is billed exactly once, every hold settled once, no transfer is partial
//! (the ledger replays from its history), and the wallet paid exactly the
//! bill.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::harness::{array, count, cpu_pool, hello, text, wait_for, Api, Db, Server};

both_backends!(
    crash_while_billing,
    crash_while_billing_sqlite,
    crash_while_billing_postgres
);

const TASKS: u64 = 400;
/// Tasks per report.
const CHUNK: usize = 1;
const REPORTERS: usize = 4;

/// Sends the reports `mine` in order until the server stops answering;
/// returns how many were answered.
async fn reporter(api: Api, site: String, mine: Vec<Value>, answered: Arc<AtomicUsize>) -> usize {
    let path = format!("/v1/sites/{site}/reports");
    let mut done = 0;
    for report in mine {
        match api.try_post(&path, &report).await {
            Ok((200, _)) => {
                done += 1;
                answered.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, text)) => panic!("report: {status} {text}"),
            Err(_) => return done,
        }
    }
    done
}

async fn crash_while_billing(db: Db) {
    let config = "round_interval_ms = 200\n";
    let mut server = db.serve_with(config).await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let site = server.site(&provider, "gy-01", "guian").await;
    // Room to spare: no congestion, the price is the list price.
    site.put_pools(json!([cpu_pool("cpu", 2 * TASKS, 1.0)]))
        .await;
    site.heartbeat().await;
    let mut job = hello("billed");
    job["tasks"] = json!(TASKS);
    job["hours"] = json!(1.0);
    job["bid_yuan_per_unit_hour"] = json!(2.0);
    let id = text(&tenant.api.submit(&job).await, "id");
    wait_for("all placed", Duration::from_secs(30), || async {
        let view = tenant.api.job(&id).await;
        (count(&view, "placed") == TASKS).then_some(())
    })
    .await;
    let list = array(site.assignments().await["assignments"].clone());
    assert_eq!(list.len() as u64, TASKS);
    // Each task: its final status with one record of 1.5 s of one core.
    // The wall time fits the attempt's window once 1.5 s have passed.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let reports: Vec<Value> = list
        .chunks(CHUNK)
        .map(|chunk| {
            let statuses: Vec<Value> = chunk
                .iter()
                .map(|a| {
                    json!({"job": a["job"], "task": a["task"], "attempt": a["attempt"],
                                "state": "succeeded", "exit_code": 0})
                })
                .collect();
            let usage: Vec<Value> = chunk
                .iter()
                .map(|a| {
                    json!({"job": a["job"], "task": a["task"], "attempt": a["attempt"],
                                "seq": 0, "pool": a["pool"], "units": 1, "wall_ms": 1_500})
                })
                .collect();
            json!({"statuses": statuses, "usage": usage})
        })
        .collect();
    let mut shares: Vec<Vec<Value>> = vec![Vec::new(); REPORTERS];
    for (i, report) in reports.iter().enumerate() {
        shares[i % REPORTERS].push(report.clone());
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let reporters: Vec<_> = shares
        .into_iter()
        .map(|mine| {
            tokio::spawn(reporter(
                site.api.clone(),
                site.id.clone(),
                mine,
                answered.clone(),
            ))
        })
        .collect();
    // Mid-stream: a few reports answered, most still to send.
    wait_for("some reports answered", Duration::from_secs(20), || {
        let done = answered.load(Ordering::Relaxed);
        async move { (done >= 4).then_some(()) }
    })
    .await;
    server.kill();
    let mut before = 0;
    for reporter in reporters {
        before += reporter.await.expect("a reporter");
    }
    assert!(before < reports.len(), "the crash came mid-stream");

    // Restart; the site resends every report, in order.
    let server = db.serve_with(config).await;
    let site_api = server.api(&site_token(&site));
    site_api
        .post(&format!("/v1/sites/{}/heartbeat", site.id), json!({}))
        .await
        .expect(200);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for report in &reports {
        let answer = site_api
            .post(&format!("/v1/sites/{}/reports", site.id), report.clone())
            .await
            .expect(200);
        for outcome in answer["usage"].as_array().expect("usage outcomes") {
            *outcomes.entry(outcome["outcome"].to_string()).or_default() += 1;
            assert!(
                outcome["outcome"] == "accepted" || outcome["outcome"] == "duplicate",
                "{answer}"
            );
        }
    }
    eprintln!(
        "crash while billing: {before} reports answered before the kill; resends {outcomes:?}"
    );
    // A record that does not match its task is refused, said why, and
    // counted in /metrics; it bills nothing.
    let mut wrong = reports[0]["usage"][0].clone();
    wrong["seq"] = json!(1);
    wrong["units"] = json!(3);
    let answer = site_api
        .post(
            &format!("/v1/sites/{}/reports", site.id),
            json!({ "usage": [wrong] }),
        )
        .await
        .expect(200);
    assert_eq!(answer["usage"][0]["outcome"], "rejected", "{answer}");
    assert!(
        answer["usage"][0]["reason"]
            .as_str()
            .is_some_and(|why| why.contains("units 3")),
        "{answer}"
    );
    let metrics = server.anonymous().get("/metrics").await.text;
    assert!(
        metrics.contains("suanwang_usage_rejected_total{reason=\"units\"} 1"),
        "{metrics}"
    );
    let tenant_api = server.api(&tenant.token);
    let view = tenant_api.job(&id).await;
    assert_eq!(view["state"], "succeeded", "{view}");

    // Each record billed once; the wallet paid exactly the bill; the
    // provider was paid it; nothing is held; the history replays.
    let bill = tenant_api
        .get(&format!("/v1/bills?job={id}&limit=1000"))
        .await
        .expect(200);
    assert_eq!(bill["totals"]["lines"], TASKS, "{}", bill["totals"]);
    let total = bill["totals"]["total_micro_yuan"]
        .as_i64()
        .expect("a total");
    // 400 × 1.5 s of one core at 1 yuan per hour, rounded once.
    assert_eq!(
        total,
        (TASKS as i64 * 1_500 * 1_000_000 + 1_800_000) / 3_600_000
    );
    let wallet = tenant_api.get("/v1/wallet").await.expect(200);
    assert_eq!(wallet["held_micro_yuan"], 0, "{wallet}");
    assert_eq!(
        wallet["balance_micro_yuan"].as_i64(),
        Some(Server::TENANT_WALLET_MICRO - total),
        "{wallet}"
    );
    let earnings = server
        .api(&provider.token)
        .get("/v1/earnings")
        .await
        .expect(200);
    assert_eq!(
        earnings["settled_micro_yuan"].as_i64(),
        Some(total),
        "{earnings}"
    );
    let check = server.operator().get("/v1/ledger/check").await.expect(200);
    assert!(
        check["transfers"].as_u64().is_some_and(|n| n > 0),
        "{check}"
    );
}

fn site_token(site: &super::harness::Site) -> String {
    site.api.token().to_owned()
}
