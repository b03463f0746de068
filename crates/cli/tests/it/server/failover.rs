//! Two servers on one PostgreSQL database: both answer the API, exactly one
//! runs the scheduling loop, a topology replaced through one is used by the
//! other within seconds, and when the leader is killed the other takes over
//! and places new work within 10 s. On SQLite a second server on the same file
//! is refused.

use std::time::{Duration, Instant};

use serde_json::json;

use super::harness::{cpu_pool, hello, text, wait_for, Db};

const LEADER_LINE: &str = "this server now runs the scheduling loop";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_postgres() {
    let Some(db) = Db::postgres("leader_failover_postgres").await else {
        return;
    };
    let mut first = db.serve().await;
    wait_for("the first server to lead", Duration::from_secs(10), || {
        let led = first.log().contains(LEADER_LINE);
        async move { led.then_some(()) }
    })
    .await;
    let second = db.serve().await;
    assert_ne!(first.base, second.base);

    // Both answer the API on the same data.
    let tenant = second.tenant("acme").await;
    let provider = first.provider("power").await;
    let site = second.site(&provider, "sh-01", "shanghai").await;
    site.put_pools(json!([cpu_pool("cpu", 16, 0.5)])).await;
    let _beating = site.keep_alive(Duration::from_millis(500));
    for server in [&first, &second] {
        let who = server
            .api(&tenant.token)
            .get("/v1/whoami")
            .await
            .expect(200);
        assert_eq!(who["principal"]["id"], tenant.id.as_str());
    }

    // A job submitted to the follower is placed by the leader.
    let job = text(
        &second.api(&tenant.token).submit(&hello("before")).await,
        "id",
    );
    second
        .api(&tenant.token)
        .wait_tasks(&job, "placement by the first server", |t| {
            t["state"] == "placed"
        })
        .await;
    // By now the second server has asked for the lead at least once, and
    // did not get it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(first.log().contains(LEADER_LINE));
    assert!(
        !second.log().contains(LEADER_LINE),
        "two leaders:\n--- second\n{}",
        second.log()
    );

    // The operator replaces the topology through the leader; the follower
    // validates against it within a few seconds, without a restart.
    let follower = second.api(&provider.token);
    let newtown = json!({"name": "nt-01", "region": "newtown"});
    follower
        .post("/v1/sites", newtown.clone())
        .await
        .expect(422);
    let topology = json!({
        "regions": [
            {"id": "shanghai", "name": "Shanghai", "lat_deg": 31.23, "lon_deg": 121.47},
            {"id": "newtown", "name": "Newtown", "lat_deg": 30.0, "lon_deg": 120.0}
        ],
        "latency_ms": [[1.0, 3.0], [3.0, 1.0]],
        "transfer_yuan_per_gb": [[0.0, 0.1], [0.1, 0.0]],
        "carbon_yuan_per_kg": 0.05
    });
    first
        .operator()
        .put("/v1/topology", topology)
        .await
        .expect(200);
    wait_for(
        "the follower to take the new topology",
        Duration::from_secs(6),
        || {
            let (follower, newtown) = (follower.clone(), newtown.clone());
            async move { (follower.post("/v1/sites", newtown).await.status == 201).then_some(()) }
        },
    )
    .await;

    // kill -9 the leader; the survivor places new work within 10 s.
    first.kill();
    let killed = Instant::now();
    let survivor = second.api(&tenant.token);
    let job = text(&survivor.submit(&hello("after")).await, "id");
    wait_for("placement by the survivor", Duration::from_secs(10), || {
        let survivor = survivor.clone();
        let job = job.clone();
        async move {
            let tasks = survivor.tasks(&job).await;
            tasks.iter().all(|t| t["state"] == "placed").then_some(())
        }
    })
    .await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(10), "failover took {took:?}");
    assert!(second.log().contains(LEADER_LINE), "{}", second.log());
    eprintln!("failover: placed {took:?} after kill -9 of the leader");
    // The site stayed healthy across the change of leader.
    let site_view = second
        .api(&provider.token)
        .get(&format!("/v1/sites/{}", site.id))
        .await
        .expect(200);
    assert_eq!(site_view["healthy"], true, "{site_view}");
    assert_eq!(
        site_view["pools"][0]["used"], 8,
        "both jobs hold their capacity: {site_view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_server_on_one_sqlite_file_is_refused() {
    let db = Db::sqlite();
    let first = db.serve().await;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_suanwang"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SUANWANG_") {
            command.env_remove(name);
        }
    }
    let output = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(db.dir().join("data"))
        .env("SUANWANG_OPERATOR_TOKEN", &db.operator)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .expect("the second server exits at once")
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another suanwang server uses"), "{stderr}");
    // The first is unharmed.
    first.operator().get("/v1/whoami").await.expect(200);
}
