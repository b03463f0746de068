//! Malformed, misspelt, invalid and oversized request bodies: each is
//! refused with the right status and an error that names the field.

use reqwest::Method;
use serde_json::{json, Value};

use suanwang_server::json::BODY_BYTES_MAX;

use super::harness::{cpu_pool, hello, Api, Db, Reply};

both_backends!(bad_bodies, bad_bodies_sqlite, bad_bodies_postgres);

/// Submits `job` and checks the 422 names `field`.
async fn invalid(api: &Api, job: Value, field: &str) {
    let error = api
        .post("/v1/jobs", job.clone())
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], field, "{job}\n{error}");
}

fn with(mut job: Value, pointer: &str, value: Value) -> Value {
    let shown = job.to_string();
    *job.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {shown}")) = value;
    job
}

async fn bad_bodies(db: Db) {
    let server = db.serve().await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let api = &tenant.api;

    // Unknown fields, at any depth, are named by their path.
    let mut job = hello("typo");
    job["resources"]["unitz"] = json!(2);
    invalid(api, job, "resources.unitz").await;
    let mut job = hello("typo");
    job["colour"] = json!("blue");
    invalid(api, job, "colour").await;
    let mut job = hello("typo");
    job["run"]["envv"] = json!({});
    invalid(api, job, "run.envv").await;
    // Wrong types and missing fields too.
    invalid(api, with(hello("typed"), "/tasks", json!("four")), "tasks").await;
    let mut job = hello("missing");
    job.as_object_mut().expect("an object").remove("origin");
    let error = api.post("/v1/jobs", job).await.error(422, "invalid");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("origin"),
        "{error}"
    );

    // Invalid values name their field.
    invalid(api, with(hello("none"), "/tasks", json!(0)), "tasks").await;
    invalid(
        api,
        with(hello("nowhere"), "/origin", json!("atlantis")),
        "origin",
    )
    .await;
    invalid(
        api,
        with(hello("weird"), "/resources/kind", json!("quantum")),
        "resources.kind",
    )
    .await;
    invalid(
        api,
        with(hello("free"), "/bid_yuan_per_unit_hour", json!(-1.0)),
        "bid_yuan_per_unit_hour",
    )
    .await;
    invalid(api, with(hello(""), "/name", json!("")), "name").await;
    // Nothing was stored.
    assert!(api.all_jobs().await.is_empty());

    // Not JSON: 400.
    let mut trailing = serde_json::to_vec(&hello("trailing")).expect("JSON");
    trailing.extend_from_slice(b" {}");
    let mut truncated = serde_json::to_vec(&hello("truncated")).expect("JSON");
    truncated.truncate(truncated.len() / 2);
    for bytes in [truncated, trailing, b"not json at all".to_vec(), Vec::new()] {
        let reply = api.raw(Method::POST, "/v1/jobs", bytes).await;
        let error = reply.error(400, "bad-json");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains("JSON"),
            "{error}"
        );
    }

    // Over 1 MiB: 413. One byte over, the server has read the whole body
    // when it answers, so the answer always arrives.
    let mut over = serde_json::to_vec(&hello("big")).expect("JSON");
    over.resize(BODY_BYTES_MAX + 1, b' ');
    let reply = api
        .post_over_socket("/v1/jobs", over.clone())
        .await
        .expect("an answer");
    oversized(reply);
    // So does the CLI's HTTP client (the CLI itself never sends this much).
    oversized(api.raw(Method::POST, "/v1/jobs", over).await);
    // Far over, the server stops reading: the answer is 413 or, when the
    // server's close resets the connection first, nothing.
    for size in [2 * BODY_BYTES_MAX, 16 * BODY_BYTES_MAX] {
        if let Some(reply) = api.post_over_socket("/v1/jobs", vec![b' '; size]).await {
            oversized(reply);
        }
    }
    // Either way nothing was stored, and the server goes on.
    assert!(api.all_jobs().await.is_empty());
    // Just under the limit is read, and then judged on its merits.
    let mut fits = with(hello("fits"), "/tasks", json!(0));
    fits["run"]["args"] = json!(["y".repeat(900 * 1024)]);
    api.post("/v1/jobs", fits).await.error(422, "invalid");

    // Other bodies: principals, sites, pools, reports, tokens.
    let error = server
        .operator()
        .post("/v1/tenants", json!({"name": "x", "admin": true}))
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "admin");
    let error = provider
        .api
        .post("/v1/sites", json!({"name": "sh", "region": "atlantis"}))
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "region");
    let site = server.site(&provider, "sh", "shanghai").await;
    let mut pool = cpu_pool("cpu", 4, 1.0);
    pool["cores"] = json!(4);
    let error = site
        .api
        .put(
            &format!("/v1/sites/{}/pools", site.id),
            json!({"pools": [cpu_pool("ok", 1, 1.0), pool]}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "pools[1].cores", "{error}");
    let error = site
        .api
        .put(
            &format!("/v1/sites/{}/pools", site.id),
            json!({"pools": [cpu_pool("cpu", 4, 1.0), cpu_pool("cpu", 4, 1.0)]}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "pools[1].name", "{error}");
    let error = site
        .api
        .post(
            &format!("/v1/sites/{}/reports", site.id),
            json!({"statuses": [{"job": "j", "task": 0, "attempt": 1, "state": "exploded"}]}),
        )
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "statuses[0].state", "{error}");
    let error = api
        .post("/v1/tokens", json!({"nam": "ci"}))
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "nam");

    // The CLI refuses a misspelt job file before sending it: exit 2.
    let file = db.file("typo.toml", "name = \"t\"\ntasks = 1\nhours = 1\nbid_yuan_per_unit_hour = 1\norigin = \"shanghai\"\n[resources]\nkind = \"cpu\"\nunitz = 2\n[run]\ncommand = \"true\"\n");
    let run = server
        .cli(
            &tenant.token,
            &["job", "submit", file.to_str().expect("UTF-8 path")],
        )
        .await
        .expect(2);
    assert!(run.stderr.contains("unitz"), "{}", run.stderr);
    // And relays the server's field on an invalid value: exit 2.
    let file = db.file(
        "zero.toml",
        &std::fs::read_to_string(super::harness::hello_path())
            .expect("hello")
            .replace("tasks = 4", "tasks = 0"),
    );
    let run = server
        .cli(
            &tenant.token,
            &["job", "submit", file.to_str().expect("UTF-8 path")],
        )
        .await
        .expect(2);
    assert!(
        run.stderr.contains("422") && run.stderr.contains("tasks"),
        "{}",
        run.stderr
    );
    assert!(api.all_jobs().await.is_empty());
}

#[track_caller]
fn oversized(reply: Reply) {
    let error = reply.error(413, "too-large");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1048576"),
        "{error}"
    );
}
