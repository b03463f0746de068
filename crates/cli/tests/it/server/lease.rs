//! A site that stops heartbeating loses its lease: its tasks are lost, go
//! back to pending, and are placed again on a site that is alive; the late
//! reports of the dead site are stale.

use std::time::Duration;

use serde_json::json;

use super::harness::{cpu_pool, hello, text, wait_for, Db};

both_backends!(lease_lapse, lease_lapse_sqlite, lease_lapse_postgres);

async fn lease_lapse(db: Db) {
    let server = db
        .serve_with("lease_ttl_s = 2\nround_interval_ms = 200\n")
        .await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let site_a = server.site(&provider, "site-a", "shanghai").await;
    let site_b = server.site(&provider, "site-b", "shanghai").await;
    site_a.put_pools(json!([cpu_pool("cpu", 4, 0.5)])).await;
    site_b.put_pools(json!([cpu_pool("cpu", 4, 0.5)])).await;
    let lease = site_a.heartbeat().await;
    assert_eq!(lease["ttl_s"], 2, "the configured lease: {lease}");
    let beating_a = site_a.keep_alive(Duration::from_millis(300));

    // B has never heartbeated: unhealthy, so the job goes to A.
    let mut job = hello("lease");
    job["tasks"] = json!(2);
    // Each task's memory reaches the site with its assignment.
    job["resources"]["memory_gib"] = json!(1.5);
    let job_id = text(&tenant.api.submit(&job).await, "id");
    let placed = tenant
        .api
        .wait_tasks(&job_id, "tasks placed on A", |t| t["state"] == "placed")
        .await;
    assert!(
        placed.iter().all(|t| t["site"] == site_a.id.as_str()),
        "{placed:?}"
    );
    let assignments = site_a.assignments().await;
    let first: Vec<_> = assignments["assignments"]
        .as_array()
        .expect("a list")
        .clone();
    assert_eq!(first.len(), 2, "{assignments}");
    assert!(
        first.iter().all(|a| a["memory_gib"] == 1.5),
        "{assignments}"
    );
    let running: Vec<_> = first
        .iter()
        .map(|a| json!({"job": a["job"], "task": a["task"], "attempt": a["attempt"], "state": "running"}))
        .collect();
    let answer = site_a.report(json!({ "statuses": running })).await;
    assert!(
        answer["statuses"]
            .as_array()
            .expect("outcomes")
            .iter()
            .all(|o| o["outcome"] == "accepted"),
        "{answer}"
    );
    // A lease is renewed by heartbeats: A outlives several TTLs.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tasks = tenant.api.tasks(&job_id).await;
    assert!(
        tasks
            .iter()
            .all(|t| t["state"] == "running" && t["site"] == site_a.id.as_str()),
        "{tasks:?}"
    );

    // A goes silent; B comes up.
    drop(beating_a);
    let silent_at = std::time::Instant::now();
    let _beating_b = site_b.keep_alive(Duration::from_millis(300));
    let moved = wait_for("tasks placed again on B", Duration::from_secs(10), || {
        let api = tenant.api.clone();
        let job_id = job_id.clone();
        let b = site_b.id.clone();
        async move {
            let tasks = api.tasks(&job_id).await;
            tasks
                .iter()
                .all(|t| t["state"] == "placed" && t["site"] == b.as_str())
                .then_some(tasks)
        }
    })
    .await;
    assert!(
        silent_at.elapsed() < Duration::from_secs(8),
        "took {:?}",
        silent_at.elapsed()
    );
    for (task, before) in moved.iter().zip(&placed) {
        assert_eq!(
            task["attempt"].as_u64(),
            before["attempt"].as_u64().map(|a| a + 1),
            "a new attempt: {task}"
        );
    }
    let events = tenant.api.events(&job_id).await;
    let lost: Vec<_> = events.iter().filter(|e| e["kind"] == "lost").collect();
    assert_eq!(lost.len(), 2, "{events:?}");
    assert!(
        lost.iter().all(|e| e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&site_a.id)),
        "{lost:?}"
    );
    let site = provider
        .api
        .get(&format!("/v1/sites/{}", site_a.id))
        .await
        .expect(200);
    assert_eq!(site["healthy"], false, "{site}");
    assert_eq!(
        site["pools"][0]["used"], 0,
        "A's capacity is no longer taken: {site}"
    );

    // A's late report of the old attempt is stale; it changes nothing.
    let late: Vec<_> = first
        .iter()
        .map(|a| json!({"job": a["job"], "task": a["task"], "attempt": a["attempt"], "state": "succeeded", "exit_code": 0}))
        .collect();
    let answer = site_a.report(json!({ "statuses": late })).await;
    assert!(
        answer["statuses"]
            .as_array()
            .expect("outcomes")
            .iter()
            .all(|o| o["outcome"] == "rejected"),
        "{answer}"
    );
    assert!(site_a.assignments().await["assignments"]
        .as_array()
        .is_some_and(Vec::is_empty));

    // B runs the new attempts to the end.
    let assignments = site_b.assignments().await;
    let second = assignments["assignments"]
        .as_array()
        .expect("a list")
        .clone();
    assert_eq!(second.len(), 2, "{assignments}");
    let done: Vec<_> = second
        .iter()
        .flat_map(|a| {
            [
                json!({"job": a["job"], "task": a["task"], "attempt": a["attempt"], "state": "running"}),
                json!({"job": a["job"], "task": a["task"], "attempt": a["attempt"], "state": "succeeded", "exit_code": 0}),
            ]
        })
        .collect();
    let answer = site_b.report(json!({ "statuses": done })).await;
    assert!(
        answer["statuses"]
            .as_array()
            .expect("outcomes")
            .iter()
            .all(|o| o["outcome"] == "accepted"),
        "{answer}"
    );
    assert_eq!(tenant.api.job(&job_id).await["state"], "succeeded");
}

both_backends!(
    heartbeat_says,
    heartbeat_says_sqlite,
    heartbeat_says_postgres
);

/// What an agent says with its heartbeat (its outbox, and why it starts no
/// new attempts) is what the site's view shows until the next heartbeat;
/// an empty heartbeat says nothing; a bad body is 422 naming the field, and
/// changes nothing.
async fn heartbeat_says(db: Db) {
    let server = db.serve().await;
    let provider = server.provider("power").await;
    let site = server.site(&provider, "site-a", "shanghai").await;
    let path = format!("/v1/sites/{}/heartbeat", site.id);
    let view = |api: &super::harness::Api| {
        let path = format!("/v1/sites/{}", site.id);
        let api = api.clone();
        async move { api.get(&path).await.expect(200) }
    };

    let paused = "outbox holds 12 reports, outbox_max is 10";
    site.api
        .post(&path, json!({"outbox": 12, "starts_paused": paused}))
        .await
        .expect(200);
    let seen = view(&provider.api).await;
    assert_eq!(seen["agent_outbox"], 12, "{seen}");
    assert_eq!(seen["agent_starts_paused"], paused, "{seen}");
    assert_eq!(seen["healthy"], true, "{seen}");

    let error = site
        .api
        .post(&path, json!({"outbox": 100_000_001u64}))
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "outbox", "{error}");
    let error = site
        .api
        .post(&path, json!({"outbox": 1, "starts_pausd": "typo"}))
        .await
        .error(422, "invalid");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("starts_pausd"),
        "{error}"
    );
    assert_eq!(
        view(&provider.api).await["agent_outbox"],
        12,
        "a refused heartbeat changed nothing"
    );

    site.api.post(&path, json!({"outbox": 0})).await.expect(200);
    let seen = view(&provider.api).await;
    assert_eq!(seen["agent_outbox"], 0, "{seen}");
    assert!(seen["agent_starts_paused"].is_null(), "{seen}");

    // An empty body, or `null`: a plain heartbeat, which says nothing.
    for body in [&b""[..], b"null"] {
        site.api.post(&path, json!({"outbox": 5})).await.expect(200);
        site.api
            .raw(reqwest::Method::POST, &path, body.to_vec())
            .await
            .expect(200);
        let seen = view(&provider.api).await;
        assert!(seen["agent_outbox"].is_null(), "{seen}");
    }
}
