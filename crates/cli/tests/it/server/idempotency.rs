//! Retried submits and cancels with an `Idempotency-Key`: the same key and
//! body give the original answer and no second job; the same key with
//! another body is 422.

use serde_json::json;

use super::harness::{hello, hello_path, text, Db};

both_backends!(idempotency, idempotency_sqlite, idempotency_postgres);

async fn idempotency(db: Db) {
    let server = db.serve().await;
    let tenant = server.tenant("acme").await;
    let other = server.tenant("other").await;
    let api = &tenant.api;
    let body = serde_json::to_vec(&hello("once")).expect("JSON");

    // Same key, same body: the same job, 201 both times.
    let first = api.post_keyed("/v1/jobs", "key-1", &body).await.expect(201);
    let second = api.post_keyed("/v1/jobs", "key-1", &body).await.expect(201);
    assert_eq!(first["id"], second["id"], "a retry made a second job");
    assert_eq!(first, second, "a retry answers with the original body");
    let jobs = api.all_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["id"], first["id"]);

    // Same key, another body: 422 idempotency-mismatch, nothing stored.
    let changed = serde_json::to_vec(&hello("twice")).expect("JSON");
    api.post_keyed("/v1/jobs", "key-1", &changed)
        .await
        .error(422, "idempotency-mismatch");
    assert_eq!(api.all_jobs().await.len(), 1);
    // A new key makes a new job; keys belong to their tenant.
    let fresh = api.post_keyed("/v1/jobs", "key-2", &body).await.expect(201);
    assert_ne!(fresh["id"], first["id"]);
    let theirs = other
        .api
        .post_keyed("/v1/jobs", "key-1", &body)
        .await
        .expect(201);
    assert_ne!(theirs["id"], first["id"]);
    assert_eq!(theirs["tenant"], other.id.as_str());
    assert_eq!(api.all_jobs().await.len(), 2);
    assert_eq!(other.api.all_jobs().await.len(), 1);
    // Without a key, each submit is a new job.
    api.post("/v1/jobs", hello("once")).await.expect(201);
    api.post("/v1/jobs", hello("once")).await.expect(201);
    assert_eq!(api.all_jobs().await.len(), 4);
    // An unusable key is refused.
    let error = api
        .post_keyed("/v1/jobs", &"k".repeat(300), &body)
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "Idempotency-Key");

    // Cancel with a key, twice: the same answer; without one, 409.
    let job_id = text(&first, "id");
    let cancel = format!("/v1/jobs/{job_id}/cancel");
    let once = api.post_keyed(&cancel, "cancel-1", b"").await.expect(200);
    assert_eq!(once, json!({"id": job_id, "state": "cancelled"}));
    let again = api.post_keyed(&cancel, "cancel-1", b"").await.expect(200);
    assert_eq!(once, again);
    api.post(&cancel, json!(null)).await.error(409, "finished");
    // The cancel key used on another job is a mismatch.
    let fresh_id = text(&fresh, "id");
    api.post_keyed(&format!("/v1/jobs/{fresh_id}/cancel"), "cancel-1", b"")
        .await
        .error(422, "idempotency-mismatch");
    assert_eq!(api.job(&fresh_id).await["state"], "pending");
    let job = api.job(&job_id).await;
    assert_eq!(job["state"], "cancelled");
    let cancelled_events = api
        .events(&job_id)
        .await
        .iter()
        .filter(|e| e["kind"] == "cancelled")
        .count();
    assert_eq!(cancelled_events, 1, "the retried cancel changed nothing");
    // A submit key is not a cancel key: the same key on cancel is a mismatch.
    api.post_keyed(&format!("/v1/jobs/{fresh_id}/cancel"), "key-2", b"")
        .await
        .error(422, "idempotency-mismatch");

    // The CLI: the same --idempotency-key twice prints the same job.
    let file = hello_path();
    let file = file.to_str().expect("UTF-8 path");
    let args = [
        "job",
        "submit",
        file,
        "--idempotency-key",
        "cli-key",
        "--output",
        "json",
    ];
    let one = server.cli(&tenant.token, &args).await.expect(0).json();
    let two = server.cli(&tenant.token, &args).await.expect(0).json();
    assert_eq!(one["id"], two["id"]);
    assert_eq!(api.all_jobs().await.len(), 5);
    // And cancel --idempotency-key twice answers the same.
    let one_id = text(&one, "id");
    let cancel_args = [
        "job",
        "cancel",
        &one_id,
        "--idempotency-key",
        "cli-cancel",
        "--output",
        "json",
    ];
    let c1 = server
        .cli(&tenant.token, &cancel_args)
        .await
        .expect(0)
        .json();
    let c2 = server
        .cli(&tenant.token, &cancel_args)
        .await
        .expect(0)
        .json();
    assert_eq!(c1, c2);
    assert_eq!(c1["state"], "cancelled");
}

both_backends!(
    idempotency_retention,
    idempotency_retention_sqlite,
    idempotency_retention_postgres
);

/// With `idempotency_retention_s = 1`, the background prune removes a key's
/// record within a few seconds; the same key and body are then a new request
/// and make a second job.
async fn idempotency_retention(db: Db) {
    let server = db.serve_with("idempotency_retention_s = 1\n").await;
    let tenant = server.tenant("acme").await;
    let api = &tenant.api;
    let body = serde_json::to_vec(&hello("kept-a-while")).expect("JSON");
    let first = api.post_keyed("/v1/jobs", "key-r", &body).await.expect(201);
    let again = api.post_keyed("/v1/jobs", "key-r", &body).await.expect(201);
    assert_eq!(first["id"], again["id"], "within the retention it replays");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let fresh = loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let answer = api.post_keyed("/v1/jobs", "key-r", &body).await.expect(201);
        if answer["id"] != first["id"] {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the record of key-r was never pruned"
        );
    };
    assert_ne!(fresh["id"], first["id"]);
    let ids: Vec<_> = api
        .all_jobs()
        .await
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        ids.contains(&first["id"]) && ids.contains(&fresh["id"]),
        "{ids:?}"
    );
}
